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

fn compute_version(base: &str) -> serde_json::Value {
    json!({
        "id": "v2.1",
        "links": [{"href": format!("{base}/compute/v2.1/"), "rel": "self"},
                  {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
        "status": "CURRENT", "version": crate::nova::MAX_VERSION, "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z"
    })
}

fn compute_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"versions": [compute_version(&c.base)]}))
}

fn compute_v21(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"version": compute_version(&c.base)}))
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

fn volume_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        300,
        &json!({"versions": [{
            "id": "v3.0",
            "links": [{"href": "https://docs.openstack.org/", "rel": "describedby", "type": "text/html"},
                      {"href": format!("{}/volume/v3/", c.base), "rel": "self"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
            "min_version": "3.0", "status": "CURRENT", "updated": "2022-08-31T00:00:00Z", "version": "3.71"
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

fn lb_versions(base: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"id": "v2.0", "status": "SUPPORTED", "updated": "2016-12-11T00:00:00Z",
               "links": [{"href": format!("{base}/load-balancer/v2"), "rel": "self"}]}),
        json!({"id": "v2.30", "status": "CURRENT", "updated": "2024-10-15T00:00:00Z",
               "links": [{"href": format!("{base}/load-balancer/v2"), "rel": "self"}]}),
    ]
}

fn lb_root(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"versions": lb_versions(&c.base)}))
}

fn lb_v2(_: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"version": lb_versions(&c.base)[1]}))
}
