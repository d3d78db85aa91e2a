//! `[local]` in the cluster file.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// The lab bridge's subnet: the deploy side is `.1`, the load balancer `.10`, node k `.10+k`.
    #[serde(default = "default_local_subnet")]
    pub subnet: Ipv4Net,
}

fn default_local_subnet() -> Ipv4Net {
    "10.213.0.0/24".parse().expect("a valid CIDR")
}
