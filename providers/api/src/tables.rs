//! The vendor guide's tables, as data. This is the only module in the project that names a port:
//! the providers, the NGINX renderer, the preflight checks and the audit table all read it.
//!
//! Source: `ha_deployment.txt` — Step 1 (security group), Step 2 (node minimums), Step 3 (load
//! balancer listeners and the NGINX stream config) and Step 6 (overlays). Where the guide's own
//! text is inconsistent, the choice made is written next to the row.

use serde::Serialize;

/// Transport protocol of a rule or listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may send traffic that an ingress rule admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The security group itself (the guide's "Remote Security Group: Acura_ha").
    SelfGroup,
    /// The cluster file's `access.admin_cidrs` (the guide's `<IP*>/32`).
    Admin,
    /// The cluster file's `access.public_cidrs` (the guide leaves these rows open).
    Public,
}

/// One ingress rule of the guide's Step 1 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngressRule {
    pub protocol: Protocol,
    pub from_port: u16,
    pub to_port: u16,
    pub source: Source,
    pub description: &'static str,
}

impl IngressRule {
    /// `22`, `30080` or `1-65535`.
    pub fn ports(&self) -> String {
        if self.from_port == self.to_port {
            self.from_port.to_string()
        } else {
            format!("{}-{}", self.from_port, self.to_port)
        }
    }
}

const fn rule(
    protocol: Protocol,
    from_port: u16,
    to_port: u16,
    source: Source,
    description: &'static str,
) -> IngressRule {
    IngressRule {
        protocol,
        from_port,
        to_port,
        source,
        description,
    }
}

/// Step 1: the security group's ingress rules, in the guide's order.
pub const INGRESS_RULES: &[IngressRule] = &[
    rule(
        Protocol::Tcp,
        1,
        65535,
        Source::SelfGroup,
        "all TCP between the cluster's hosts (Kubernetes, etcd, MariaDB)",
    ),
    rule(
        Protocol::Tcp,
        22,
        22,
        Source::Admin,
        "SSH and Ansible from the deploy host",
    ),
    rule(
        Protocol::Tcp,
        80,
        80,
        Source::Public,
        "Acura UI (redirects to HTTPS)",
    ),
    rule(Protocol::Tcp, 443, 443, Source::Public, "Acura UI"),
    rule(
        Protocol::Tcp,
        4443,
        4443,
        Source::Public,
        "initial configuration UI",
    ),
    rule(Protocol::Tcp, 6443, 6443, Source::Public, "Kubernetes API"),
    rule(Protocol::Tcp, 30080, 30080, Source::Admin, "MariaDB"),
    rule(Protocol::Tcp, 30081, 30081, Source::Admin, "Kibana"),
    rule(Protocol::Tcp, 30082, 30082, Source::Admin, "Grafana"),
    rule(
        Protocol::Udp,
        12201,
        12201,
        Source::Public,
        "logs from agents and pods to the ELK stack",
    ),
];

/// One load-balancer listener, with the NGINX stream tuning the guide gives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// The guide's listener name (Step 3 table) or, for the two rows only its NGINX text has,
    /// a name in the same style.
    pub name: &'static str,
    pub protocol: Protocol,
    pub port: u16,
    pub description: &'static str,
    /// The guide's NGINX upstream name.
    pub upstream: &'static str,
    /// Extra directives of the guide's NGINX `server` block for this listener, in its order.
    pub nginx_directives: &'static [(&'static str, &'static str)],
}

/// Step 3: every listener the load balancer serves. The guide's cloud table has four (80, 443,
/// 4443, 6443) while its NGINX config has six (adds UDP 12201 for logs and TCP 15000 for the
/// registry): the tool serves all six on every kind of load balancer.
pub const LISTENERS: &[Listener] = &[
    Listener {
        name: "http",
        protocol: Protocol::Tcp,
        port: 80,
        description: "HTTP listener (redirects to HTTPS)",
        upstream: "stream_http",
        nginx_directives: &[],
    },
    Listener {
        name: "https",
        protocol: Protocol::Tcp,
        port: 443,
        description: "HTTPS listener for the Acura UI",
        upstream: "stream_https",
        nginx_directives: &[("proxy_buffer_size", "10m")],
    },
    Listener {
        name: "initconfig",
        protocol: Protocol::Tcp,
        port: 4443,
        description: "initial configuration UI listener",
        upstream: "stream_initial_config",
        nginx_directives: &[],
    },
    Listener {
        name: "k8s",
        protocol: Protocol::Tcp,
        port: 6443,
        description: "Kubernetes API service listener",
        upstream: "stream_kubernetes",
        nginx_directives: &[("proxy_timeout", "10s"), ("proxy_connect_timeout", "10s")],
    },
    Listener {
        name: "elk",
        protocol: Protocol::Udp,
        port: 12201,
        description: "logs listener (GELF to the ELK stack)",
        upstream: "stream_elk",
        nginx_directives: &[("proxy_timeout", "30s"), ("proxy_connect_timeout", "60s")],
    },
    Listener {
        name: "registry",
        protocol: Protocol::Tcp,
        port: 15000,
        description: "container registry listener",
        upstream: "stream_registry",
        nginx_directives: &[],
    },
];

/// Who may reach `l` on a cloud load balancer that has a security group of its own (the AWS
/// NLB's): the Step 1 row of the same protocol and port (80, 443, 4443, 6443 and UDP 12201 from
/// `public_cidrs`), else only the cluster's own group — the registry (15000) has no row of its own
/// in the table, which opens it only between the cluster's hosts (the "all TCP" self row).
pub fn lb_listener_source(l: &Listener) -> Source {
    INGRESS_RULES
        .iter()
        .find(|r| {
            r.source != Source::SelfGroup
                && r.protocol == l.protocol
                && (r.from_port..=r.to_port).contains(&l.port)
        })
        .map(|r| r.source)
        .unwrap_or(Source::SelfGroup)
}

/// The listener whose URL is printed after deployment (the guide's "initial-config UI").
pub fn initial_config_listener() -> &'static Listener {
    listener("initconfig")
}

/// The listener of the Acura UI.
pub fn ui_listener() -> &'static Listener {
    listener("https")
}

/// The Kubernetes API listener (what `lb_address` serves to the nodes).
pub fn kubernetes_listener() -> &'static Listener {
    listener("k8s")
}

fn listener(name: &str) -> &'static Listener {
    LISTENERS
        .iter()
        .find(|l| l.name == name)
        .expect("the listener table names it")
}

/// `https://<lb>:4443`: the guide's initial-configuration UI.
pub fn initial_config_url(lb_address: &str) -> String {
    format!(
        "https://{}:{}",
        host_for_url(lb_address),
        initial_config_listener().port
    )
}

/// `https://<lb>` (or with the port when the UI listener is not on 443).
pub fn ui_url(lb_address: &str) -> String {
    let port = ui_listener().port;
    if port == 443 {
        format!("https://{}", host_for_url(lb_address))
    } else {
        format!("https://{}:{}", host_for_url(lb_address), port)
    }
}

fn host_for_url(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// The SSH port every host must answer on (Step 1 admits it from the admin CIDRs).
pub const SSH_PORT: u16 = 22;

/// Ubuntu releases the guide allows on the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum UbuntuRelease {
    /// 20.04 "focal": what the guide asks for.
    #[default]
    Focal,
    /// 24.04 "noble": the vendor's newer variant.
    Noble,
}

impl UbuntuRelease {
    pub const ALL: &'static [UbuntuRelease] = &[UbuntuRelease::Focal, UbuntuRelease::Noble];

    pub fn version(self) -> &'static str {
        match self {
            UbuntuRelease::Focal => "20.04",
            UbuntuRelease::Noble => "24.04",
        }
    }

    pub fn codename(self) -> &'static str {
        match self {
            UbuntuRelease::Focal => "focal",
            UbuntuRelease::Noble => "noble",
        }
    }

    pub fn from_version(version: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.version() == version)
    }
}

/// Step 2: what each node must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMinimums {
    /// Size of the root filesystem, in GB (the guide's "200 GB volumes").
    pub root_gb: u32,
    /// "The entire 200 GB should be available as a single partition".
    pub single_partition: bool,
    pub ram_gb: u32,
    pub vcpus: u32,
}

/// The guide's node minimums.
pub const GUIDE_MINIMUMS: NodeMinimums = NodeMinimums {
    root_gb: 200,
    single_partition: true,
    ram_gb: 16,
    vcpus: 8,
};

/// The smallest cluster the guide describes ("three virtual machines"); etcd needs an odd count.
pub const MIN_NODES: u32 = 3;

/// Acura's product flavours and the overlay each one adds (Step 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProductOverlay {
    /// Disaster Recovery: the guide's example command.
    #[default]
    Dr,
    /// Migration: "replace distr-dr.yaml with distr-migration.yaml".
    Migration,
}

impl ProductOverlay {
    pub fn overlay(self) -> &'static str {
        match self {
            ProductOverlay::Dr => "overlay/distr-dr.yaml",
            ProductOverlay::Migration => "overlay/distr-migration.yaml",
        }
    }
}

/// Step 6: the overlay list for a product, in the guide's order.
pub fn default_overlays(product: ProductOverlay) -> Vec<String> {
    vec![
        "overlay/ha.yaml".to_string(),
        "overlay/golden-image.yml".to_string(),
        product.overlay().to_string(),
        "overlay/startup_reconfigure.yaml".to_string(),
    ]
}

/// Step 5: the interpreter the guide passes to `k8s-master.yaml`.
pub const ANSIBLE_PYTHON_INTERPRETER: &str = "/usr/bin/python3";

/// Step 4 and the archive layout: the playbooks the guide runs.
pub const K8S_MASTER_PLAYBOOK: &str = "ansible/k8s-master.yaml";
pub const HA_ACURA_PLAYBOOK: &str = "ansible/ha-acura.yaml";
/// The inventory file name the guide uses.
pub const HA_ENV_FILE: &str = "ha_env_file";

/// The guide's "How to ..." section: Acura's own store (a v2-style etcd in pod `etcd-0` of the
/// default namespace) holds the overlay list under this key.
pub const ACURA_STORE_POD: &str = "etcd-0";
pub const OVERLAY_LIST_KEY: &str = "/overlay_list";
/// The control-plane etcd runs as pod `etcd-<node>` in this namespace, with these certificates.
pub const CONTROL_PLANE_NAMESPACE: &str = "kube-system";
pub const ETCD_POD_PREFIX: &str = "etcd-";
pub const ETCD_CACERT: &str = "/etc/kubernetes/pki/etcd/ca.crt";
pub const ETCD_CERT: &str = "/etc/kubernetes/pki/etcd/peer.crt";
pub const ETCD_KEY: &str = "/etc/kubernetes/pki/etcd/peer.key";
/// The Python the guide asks for on the deploy host.
pub const DEPLOY_PYTHON: &str = "3.11";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_only_ports_are_ssh_and_the_node_ports() {
        let admin: Vec<u16> = INGRESS_RULES
            .iter()
            .filter(|r| r.source == Source::Admin)
            .map(|r| r.from_port)
            .collect();
        assert_eq!(admin, vec![22, 30080, 30081, 30082]);
    }

    #[test]
    fn six_listeners_with_unique_ports_and_upstreams() {
        assert_eq!(LISTENERS.len(), 6);
        let mut ports: Vec<_> = LISTENERS.iter().map(|l| (l.protocol, l.port)).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 6);
        let mut ups: Vec<_> = LISTENERS.iter().map(|l| l.upstream).collect();
        ups.sort();
        ups.dedup();
        assert_eq!(ups.len(), 6);
    }

    #[test]
    fn every_public_tcp_rule_has_a_listener() {
        for r in INGRESS_RULES.iter().filter(|r| r.source == Source::Public) {
            assert!(
                LISTENERS
                    .iter()
                    .any(|l| l.protocol == r.protocol && l.port == r.from_port),
                "{r:?}"
            );
        }
    }

    #[test]
    fn the_registry_listener_is_the_clusters_own_on_the_load_balancer() {
        let by_name = |n: &str| lb_listener_source(LISTENERS.iter().find(|l| l.name == n).unwrap());
        assert_eq!(by_name("registry"), Source::SelfGroup);
        for n in ["http", "https", "initconfig", "k8s", "elk"] {
            assert_eq!(by_name(n), Source::Public, "{n}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            initial_config_url("203.0.113.5"),
            "https://203.0.113.5:4443"
        );
        assert_eq!(ui_url("lb.example"), "https://lb.example");
        assert_eq!(
            initial_config_url("2001:db8::1"),
            "https://[2001:db8::1]:4443"
        );
    }

    #[test]
    fn overlays_follow_the_guide() {
        assert_eq!(
            default_overlays(ProductOverlay::Dr),
            [
                "overlay/ha.yaml",
                "overlay/golden-image.yml",
                "overlay/distr-dr.yaml",
                "overlay/startup_reconfigure.yaml"
            ]
        );
        assert_eq!(
            default_overlays(ProductOverlay::Migration)[2],
            "overlay/distr-migration.yaml"
        );
    }
}
