//! Paged lists, as each service pages them (`/work/shared/openstack-api/README.md`,
//! "Pagination"). One page holds at most `limit` items, and at most the configured
//! `page_size` (the services' `max_limit`); the items come sorted by their marker key (ID, or
//! the name of a key pair), and `marker` starts after that key. A page that is full gets a
//! `next` link, as the services do, so the last full page is followed by an empty one.
//!
//! * Nova, Cinder: `<collection>_links: [{"rel": "next", "href": <absolute URL>}]`, only
//!   while a next page may follow.
//! * Neutron: `<collection>_links` with `next` and (after a marker) `previous`, when paging.
//! * Octavia: `<collection>_links` always (empty on the last page).
//! * Glance: top-level `next` (a path under the image endpoint that keeps the query) and
//!   `first`.
//! * Nova server groups: `limit` and `offset`, no links.
//!
//! A marker whose item is gone is accepted (items after its key follow), as Nova does.

use crate::server::Ctx;
use crate::state::Inner;
use crate::util::{Query, encode_query, q_get, service_err};
use axum::response::Response;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Style {
    Nova,
    Cinder,
    Neutron,
    Octavia,
    Glance,
}

/// The marker key of a list item: its `id`.
pub fn by_id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

fn limit(inner: &Inner, c: &Ctx) -> Result<Option<usize>, Response> {
    let asked = match q_get(&c.q, "limit") {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(service_err(
                    &c.path,
                    400,
                    &format!("Invalid limit '{l}': it must be a positive integer"),
                ));
            }
        },
    };
    Ok(match (asked, inner.cfg.page_size) {
        (Some(a), Some(p)) => Some(a.min(p.max(1))),
        (a, p) => a.or(p.map(|p| p.max(1))),
    })
}

/// The query of this request with `limit` and `marker` replaced.
fn query_with(c: &Ctx, limit: usize, marker: &str, reverse: bool) -> String {
    let mut q: Query =
        c.q.iter()
            .filter(|(k, _)| k != "limit" && k != "marker" && k != "page_reverse")
            .cloned()
            .collect();
    q.push(("limit".into(), limit.to_string()));
    q.push(("marker".into(), marker.to_string()));
    if reverse {
        q.push(("page_reverse".into(), "True".into()));
    }
    encode_query(&q)
}

/// The body of one page of `items` (filtered already), under `key`, in `style`.
pub fn page(
    inner: &Inner,
    c: &Ctx,
    key: &str,
    mut items: Vec<Value>,
    style: Style,
    marker_of: fn(&Value) -> String,
) -> Result<Value, Response> {
    let limit = limit(inner, c)?;
    let marker = q_get(&c.q, "marker");
    let mut next = None;
    let mut previous = None;
    if limit.is_some() || marker.is_some() {
        items.sort_by_key(marker_of);
        if let Some(m) = marker {
            items.retain(|i| marker_of(i).as_str() > m);
        }
        if let Some(n) = limit {
            items.truncate(n);
            if items.len() == n {
                next = items.last().map(|i| query_with(c, n, &marker_of(i), false));
            }
            if marker.is_some() {
                previous = items.first().map(|i| query_with(c, n, &marker_of(i), true));
            }
        }
    }
    let absolute = |q: &String| format!("{}{}?{q}", c.base, c.path);
    let mut body = json!({ key: items });
    let links_key = format!("{key}_links");
    match style {
        Style::Nova | Style::Cinder => {
            if let Some(q) = &next {
                body[&links_key] = json!([{"rel": "next", "href": absolute(q)}]);
            }
        }
        // Neutron links only when paging; Octavia always.
        Style::Neutron | Style::Octavia if style == Style::Octavia || limit.is_some() => {
            let links: Vec<Value> = [("next", &next), ("previous", &previous)]
                .into_iter()
                .filter_map(|(rel, q)| q.as_ref().map(|q| json!({"rel": rel, "href": absolute(q)})))
                .collect();
            body[&links_key] = json!(links);
        }
        Style::Neutron | Style::Octavia => {}
        Style::Glance => {
            // Paths under the image endpoint (`{base}/image`): `/v2/images?...`.
            let path = c.path.strip_prefix("/image").unwrap_or(&c.path);
            let first: Query = c.q.iter().filter(|(k, _)| k != "marker").cloned().collect();
            body["first"] = json!(if first.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", encode_query(&first))
            });
            if let Some(q) = &next {
                body["next"] = json!(format!("{path}?{q}"));
            }
        }
    }
    Ok(body)
}

/// Nova's `limit` and `offset` paging (server groups): a slice of `items`, no links.
pub fn offset_page(inner: &Inner, c: &Ctx, items: Vec<Value>) -> Result<Vec<Value>, Response> {
    let limit = limit(inner, c)?;
    let offset = match q_get(&c.q, "offset") {
        None => 0,
        Some(o) => o.parse::<usize>().map_err(|_| {
            service_err(
                &c.path,
                400,
                &format!("Invalid offset '{o}': it must be a non-negative integer"),
            )
        })?,
    };
    Ok(items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

/// [`page`], answered with 200 (or the error).
pub fn respond(
    inner: &Inner,
    c: &Ctx,
    key: &str,
    items: Vec<Value>,
    style: Style,
    marker_of: fn(&Value) -> String,
) -> Response {
    match page(inner, c, key, items, style, marker_of) {
        Ok(body) => crate::util::json_resp(200, &body),
        Err(e) => e,
    }
}
