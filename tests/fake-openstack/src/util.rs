//! Small helpers shared by the services: ids, timestamps, JSON responses, error bodies in
//! each service's own envelope, and Neutron/Octavia-style list filtering.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub type Query = Vec<(String, String)>;

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A Neutron-style MAC (`fa:16:3e:..`), random tail.
pub fn mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// UTC civil time of `t`: (y, m, d, hh, mm, ss, micros).
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = if month <= 2 { y + 1 } else { y };
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros(),
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A timestamp of the forms this fake writes (`2017-02-28T00:41:44`, with `Z` or with
/// `.770785` and maybe `Z`) moved `by` into the past, written in the same form; `None` when it
/// is not one of them.
pub fn backdate(stamp: &str, by: std::time::Duration) -> Option<String> {
    let (body, z) = match stamp.strip_suffix('Z') {
        Some(b) => (b, "Z"),
        None => (stamp, ""),
    };
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let (date, time) = whole.split_once('T')?;
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let days = days_from_civil(d[0].parse().ok()?, d[1].parse().ok()?, d[2].parse().ok()?);
    let (h, mi, s): (u64, u64, u64) = (t[0].parse().ok()?, t[1].parse().ok()?, t[2].parse().ok()?);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    let moved = UNIX_EPOCH + std::time::Duration::from_secs(secs.checked_sub(by.as_secs())?);
    let (y, mo, d, h, mi, s, _) = civil(moved);
    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{z}"
    ))
}

fn civil_now() -> (i64, u32, u32, u64, u64, u64, u32) {
    civil(SystemTime::now())
}

/// `2017-02-14T19:23:58Z` (Nova, Neutron, Keystone, Glance).
pub fn now_z() -> String {
    let (y, mo, d, h, mi, s, _) = civil_now();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2017-02-28T00:41:44` (Octavia).
pub fn now_plain() -> String {
    let (y, mo, d, h, mi, s, _) = civil_now();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `2018-11-29T06:50:07.770785` (Cinder).
pub fn now_micro() -> String {
    let (y, mo, d, h, mi, s, us) = civil_now();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}")
}

/// `2015-08-26T19:49:58.000000Z` (Keystone's `issued_at` and `expires_at`).
pub fn keystone_time(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
}

/// Percent-encodes a query key or value (unreserved characters kept).
pub fn pct(v: &str) -> String {
    v.bytes()
        .map(
            |b| match b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                true => char::from(b).to_string(),
                false => format!("%{b:02X}"),
            },
        )
        .collect()
}

/// `k=v&k=v`, encoded.
pub fn encode_query(q: &Query) -> String {
    q.iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn json_resp(status: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn empty(status: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Which service a path belongs to, so faults and 401s get the right error envelope.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Svc {
    Keystone,
    Nova,
    Neutron,
    Cinder,
    Glance,
    Octavia,
    Other,
}

pub fn svc_of(path: &str) -> Svc {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "identity" => Svc::Keystone,
        "compute" => Svc::Nova,
        "network" => Svc::Neutron,
        "volume" => Svc::Cinder,
        "image" => Svc::Glance,
        "load-balancer" => Svc::Octavia,
        _ => Svc::Other,
    }
}

/// Nova's (and Cinder's) fault name for a status (`nova/api/openstack/wsgi.py`).
fn nova_fault_name(status: u16, cinder: bool) -> &'static str {
    match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        429 if !cinder => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

pub fn nova_err(status: u16, msg: &str) -> Response {
    json_resp(
        status,
        &json!({ nova_fault_name(status, false): {"code": status, "message": msg} }),
    )
}

pub fn cinder_err(status: u16, msg: &str) -> Response {
    json_resp(
        status,
        &json!({ nova_fault_name(status, true): {"code": status, "message": msg} }),
    )
}

pub fn neutron_err(status: u16, kind: &str, msg: &str) -> Response {
    json_resp(
        status,
        &json!({"NeutronError": {"type": kind, "message": msg, "detail": ""}}),
    )
}

pub fn octavia_err(status: u16, msg: &str) -> Response {
    let code = if status >= 500 { "Server" } else { "Client" };
    json_resp(
        status,
        &json!({"faultcode": code, "faultstring": msg, "debuginfo": null}),
    )
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

pub fn keystone_err(status: u16, msg: &str) -> Response {
    json_resp(
        status,
        &json!({"error": {"code": status, "title": reason(status), "message": msg}}),
    )
}

/// Glance answers errors as a short text page.
pub fn glance_err(status: u16, msg: &str) -> Response {
    let mut r = Response::new(Body::from(format!(
        "{status} {}\n\n{msg}\n\n",
        reason(status)
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

/// A generic error in the envelope of the service that owns `path`.
pub fn service_err(path: &str, status: u16, msg: &str) -> Response {
    match svc_of(path) {
        Svc::Nova => nova_err(status, msg),
        Svc::Cinder => cinder_err(status, msg),
        Svc::Neutron => {
            let kind = match status {
                404 => "NotFound",
                409 => "Conflict",
                400 => "BadRequest",
                403 => "NotAuthorized",
                503 => "ServiceUnavailable",
                _ => "HTTPInternalServerError",
            };
            neutron_err(status, kind, msg)
        }
        Svc::Octavia => octavia_err(status, msg),
        Svc::Glance => glance_err(status, msg),
        Svc::Keystone | Svc::Other => keystone_err(status, msg),
    }
}

/// Parse a JSON body; on failure the caller answers 400 in its own envelope.
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Err("The request body is empty".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("Malformed JSON in request body: {e}"))
}

pub fn q_get<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub fn q_all<'a>(q: &'a Query, key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn scalar_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Tag filters shared by Neutron, Nova and Octavia: `tags` (all of, comma separated),
/// `tags-any`, `not-tags`, `not-tags-any`. Repeated parameters are joined.
pub fn tags_match(tags: &[String], q: &Query) -> bool {
    let split = |key: &str| -> Vec<String> {
        q_all(q, key)
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let has = |t: &String| tags.contains(t);
    let all = split("tags");
    let any = split("tags-any");
    let not_all = split("not-tags");
    let not_any = split("not-tags-any");
    (all.is_empty() || all.iter().all(has))
        && (any.is_empty() || any.iter().any(has))
        && (not_all.is_empty() || !not_all.iter().all(has))
        && (not_any.is_empty() || !not_any.iter().any(has))
}

const NON_FILTER_KEYS: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "offset",
    "page_reverse",
    "sort_key",
    "sort_dir",
    "sort",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

/// Neutron/Octavia list semantics: every other query parameter is an exact-match filter on
/// the field of that name; a repeated parameter means OR. `fields=` selects columns.
pub fn filter_list(items: Vec<Value>, q: &Query) -> Vec<Value> {
    let mut out: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            let tags: Vec<String> = item
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if !tags_match(&tags, q) {
                return false;
            }
            let mut keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
            keys.dedup();
            keys.iter()
                .filter(|k| !NON_FILTER_KEYS.contains(k))
                .all(|k| {
                    let wanted = q_all(q, k);
                    match item.get(*k) {
                        Some(Value::Array(arr)) => arr
                            .iter()
                            .any(|e| scalar_str(e).is_some_and(|s| wanted.contains(&s.as_str()))),
                        Some(v) => scalar_str(v).is_some_and(|s| wanted.contains(&s.as_str())),
                        // Unknown filter fields: Neutron ignores them.
                        None => true,
                    }
                })
        })
        .collect();
    let fields: Vec<&str> = q_all(q, "fields")
        .into_iter()
        .flat_map(|f| f.split(','))
        .collect();
    if !fields.is_empty() {
        for item in &mut out {
            if let Value::Object(m) = item {
                let kept: Map<String, Value> = m
                    .iter()
                    .filter(|(k, _)| fields.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                *m = kept;
            }
        }
    }
    out
}

/// Strings of a JSON array of strings (absent or wrong type: empty).
pub fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

/// An integer given as a number or a string of digits.
pub fn int_field(v: Option<&Value>) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{n} is not an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("'{s}' is not an integer")),
        Some(other) => Err(format!("{other} is not an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::backdate;
    use std::time::Duration;

    #[test]
    fn backdate_keeps_each_form_and_crosses_days_and_leap_years() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            backdate("2024-03-01T00:41:44Z", day).as_deref(),
            Some("2024-02-29T00:41:44Z")
        );
        assert_eq!(
            backdate("2017-01-01T00:00:10", Duration::from_secs(20)).as_deref(),
            Some("2016-12-31T23:59:50")
        );
        assert_eq!(
            backdate("2018-11-29T06:50:07.770785", 3 * day).as_deref(),
            Some("2018-11-26T06:50:07.770785")
        );
        assert_eq!(backdate("yesterday", day), None);
    }
}
