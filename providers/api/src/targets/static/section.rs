//! `[static]` in the cluster file.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSection {
    pub nodes: Vec<StaticHost>,
    /// The host the tool configures NGINX on (`load_balancer.kind = "nginx"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<StaticHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticHost {
    pub name: String,
    pub address: IpAddr,
}
