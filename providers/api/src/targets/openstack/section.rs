//! `[openstack]` in the cluster file.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenStackSection {
    /// A `clouds.yaml` entry; otherwise `OS_CLOUD` or the `OS_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub flavor: String,
    /// Image name or ID.
    pub image: String,
    /// The network the nodes' ports are on.
    pub network: String,
    /// Give each host a floating IP from this external network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ip_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<String>,
    /// The NGINX VM's flavor (`load_balancer.kind = "nginx"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_flavor: Option<String>,
    #[serde(default)]
    pub anti_affinity: AntiAffinity,
    /// The subnet (name or ID) of `network` the nodes and the load balancer's VIP use;
    /// otherwise the network's first IPv4 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The catalog interface: `public` (default), `internal` or `admin`; otherwise
    /// `OS_INTERFACE` or the clouds.yaml entry's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// A PEM CA bundle to trust (relative to the cluster file); otherwise `OS_CACERT` or the
    /// clouds.yaml entry's `cacert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinity {
    #[default]
    Soft,
    Hard,
}

impl AntiAffinity {
    pub fn policy(self) -> &'static str {
        match self {
            AntiAffinity::Soft => "soft-anti-affinity",
            AntiAffinity::Hard => "anti-affinity",
        }
    }
}
