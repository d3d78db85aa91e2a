//! Version discovery documents on the service roots (answered without a token, as the
//! real services do).

use crate::server::{App, Ctx, g};
use crate::state::Inner;
use crate::util::json_resp;
use axum::Router;
use axum::response::Response;
use serde_json::json;

const DOCS: &[(&str, crate::server::H)] = &[
    ("/identity", identity_root),
    ("/identity/v3", identity_v3),
    ("/compute", compute_root),
    ("/compute/v2.1", compute_v21),
    ("/network", network_root),
    ("/network/v2.0", network_v20),
    ("/volume", volume_root),
    ("/volume/v3", volume_root),
    ("/image", image_root),
    ("/image/versions", image_root),
    ("/load-balancer", lb_root),
    ("/load-balancer/v2", lb_v2),
    ("/load-balancer/v2.0", lb_v2),
];

pub fn is_version_doc(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    DOCS.iter().any(|(d, _)| *d == p)
}

pub fn routes(mut r: Router<App>) -> Router<App> {
    for (path, f) in DOCS {
        r = r.route(path, g(*f)).route(&format!("{path}/"), g(*f));
    }
    r
}

fn identity_version(base: &str) -> serde_json::Value {
    json!({
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

fn identity_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        300,
        &json!({"versions": {"values": [identity_version(&c.base)]}}),
    )
}

fn identity_v3(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"version": identity_version(&c.base)}))
}

fn compute_version(base: &str, max: &str) -> serde_json::Value {
    json!({
        "id": "v2.1",
        "links": [{"href": format!("{base}/compute/v2.1/"), "rel": "self"},
                  {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
        "status": "CURRENT", "version": max, "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z"
    })
}

fn compute_root(inner: &mut Inner, c: &Ctx) -> Response {
    let max = &inner.cfg.cloud.compute_max_version;
    json_resp(200, &json!({"versions": [compute_version(&c.base, max)]}))
}

fn compute_v21(inner: &mut Inner, c: &Ctx) -> Response {
    let max = &inner.cfg.cloud.compute_max_version;
    json_resp(200, &json!({"version": compute_version(&c.base, max)}))
}

fn network_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        200,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT",
            "links": [{"href": format!("{}/network/v2.0/", c.base), "rel": "self"}]}]}),
    )
}

fn network_v20(_: &mut Inner, c: &Ctx) -> Response {
    let res: Vec<_> = [
        "networks",
        "subnets",
        "ports",
        "security-groups",
        "security-group-rules",
        "floatingips",
    ]
    .iter()
    .map(|n| {
        json!({"name": n.trim_end_matches('s'), "collection": n,
                   "links": [{"href": format!("{}/network/v2.0/{n}", c.base), "rel": "self"}]})
    })
    .collect();
    json_resp(200, &json!({ "resources": res }))
}

fn volume_root(inner: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        300,
        &json!({"versions": [{
            "id": "v3.0",
            "links": [{"href": "https://docs.openstack.org/", "rel": "describedby", "type": "text/html"},
                      {"href": format!("{}/volume/v3/", c.base), "rel": "self"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
            "min_version": "3.0", "status": "CURRENT", "updated": "2022-08-31T00:00:00Z",
            "version": inner.cfg.cloud.volume_max_version
        }]}),
    )
}

fn image_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        300,
        &json!({"versions": [{"id": "v2.16", "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("{}/image/v2/", c.base)}]}]}),
    )
}

/// Every `v2.x` up to the configured newest (CURRENT), as Octavia's root lists them.
fn lb_versions(base: &str, max: &str) -> Vec<serde_json::Value> {
    let newest = max
        .trim_start_matches('v')
        .split_once('.')
        .and_then(|(_, m)| m.parse::<u32>().ok())
        .unwrap_or(0);
    (0..=newest)
        .map(|m| {
            json!({"id": format!("v2.{m}"),
                   "status": if m == newest { "CURRENT" } else { "SUPPORTED" },
                   "updated": "2016-12-11T00:00:00Z",
                   "links": [{"href": format!("{base}/load-balancer/v2"), "rel": "self"}]})
        })
        .collect()
}

fn lb_root(inner: &mut Inner, c: &Ctx) -> Response {
    let max = &inner.cfg.cloud.load_balancer_max_version;
    json_resp(200, &json!({"versions": lb_versions(&c.base, max)}))
}

fn lb_v2(inner: &mut Inner, c: &Ctx) -> Response {
    let max = &inner.cfg.cloud.load_balancer_max_version;
    let all = lb_versions(&c.base, max);
    json_resp(200, &json!({"version": all.last().cloned()}))
}

/// `major.minor` of a version string (`2.67`, `v2.30`, `3.71`).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().trim_start_matches('v').split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The microversion a request asks of `service` (`compute`, `volume`) in
/// `OpenStack-API-Version` (or Nova's legacy header); `latest` asks for the newest.
fn asked(h: &axum::http::HeaderMap, service: &str) -> Option<String> {
    if let Some(v) = h.get("openstack-api-version").and_then(|v| v.to_str().ok()) {
        for part in v.split(',') {
            let mut it = part.split_whitespace();
            if it.next() == Some(service)
                && let Some(ver) = it.next()
            {
                return Some(ver.to_string());
            }
        }
    }
    if service == "compute" {
        return h
            .get("x-openstack-nova-api-version")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
    }
    None
}

/// A microversion above what the service offers answers 406, as Nova and Cinder do
/// ("Version 2.67 is not supported by the API. Minimum is 2.1 and maximum is 2.60.").
pub fn refuse_unsupported(
    inner: &Inner,
    path: &str,
    h: &axum::http::HeaderMap,
) -> Option<Response> {
    if is_version_doc(path) {
        return None;
    }
    let (service, min, max) = match crate::util::svc_of(path) {
        crate::util::Svc::Nova => ("compute", "2.1", &inner.cfg.cloud.compute_max_version),
        crate::util::Svc::Cinder => ("volume", "3.0", &inner.cfg.cloud.volume_max_version),
        _ => return None,
    };
    let ver = asked(h, service)?;
    if ver.eq_ignore_ascii_case("latest") {
        return None;
    }
    let fine = match (parse_version(&ver), parse_version(min), parse_version(max)) {
        (Some(v), Some(lo), Some(hi)) => lo <= v && v <= hi,
        _ => false,
    };
    if fine {
        return None;
    }
    let msg = format!(
        "Version {ver} is not supported by the API. Minimum is {min} and maximum is {max}."
    );
    Some(crate::util::service_err(path, 406, &msg))
}
