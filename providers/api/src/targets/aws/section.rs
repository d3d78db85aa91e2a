//! `[aws]` in the cluster file.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// Otherwise the region the aws CLI would use (`AWS_REGION`, the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Otherwise the region's default VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Nodes are spread over these subnets in turn; otherwise the VPC's default subnets.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default = "default_aws_instance_type")]
    pub instance_type: String,
    /// Otherwise the newest Canonical image of `nodes.os_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// An existing EC2 key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// A public key to import as the cluster's key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<String>,
    /// The NGINX VM's type (`load_balancer.kind = "nginx"`).
    #[serde(default = "default_aws_lb_instance_type")]
    pub lb_instance_type: String,
    #[serde(default = "yes")]
    pub associate_public_ip: bool,
}

fn default_aws_instance_type() -> String {
    "m5.2xlarge".to_string()
}
fn default_aws_lb_instance_type() -> String {
    "t3.small".to_string()
}
fn yes() -> bool {
    true
}
