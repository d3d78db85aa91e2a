//! Quota-exceeded errors injected by a `quota_exceeded` fault, in each service's words.
//! (Real quota checks live next to each create, against `Config::quotas` and live usage.)

use crate::util::{Svc, cinder_err, json_resp, neutron_err, nova_err, octavia_err, svc_of};
use axum::response::Response;
use serde_json::json;

pub fn injected(path: &str) -> Response {
    match svc_of(path) {
        Svc::Nova => nova_err(
            403,
            "Quota exceeded for cores: Requested 8, but already used 20 of 20 cores",
        ),
        Svc::Neutron => {
            let res = if path.contains("security-group-rules") {
                "security_group_rule"
            } else if path.contains("security-groups") {
                "security_group"
            } else if path.contains("floatingips") {
                "floatingip"
            } else {
                "port"
            };
            neutron_err(
                409,
                "OverQuota",
                &format!("Quota exceeded for resources: ['{res}']."),
            )
        }
        Svc::Cinder => json_resp(
            413,
            &json!({"overLimit": {"code": 413, "message":
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 200G, quota is 1000G and 900G has been consumed.",
            "retryAfter": "0"}}),
        ),
        Svc::Octavia => octavia_err(403, "Quota has been met for resources: Load Balancer"),
        _ => cinder_err(413, "Quota exceeded"),
    }
}
