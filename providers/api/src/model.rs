//! The resource model every provider shares: what a cluster is made of ([`Resource`]), what the
//! state file remembers of each one ([`Recorded`]), and what provisioning hands to the SSH
//! bootstrap ([`Inventory`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kinds of resource a cluster is made of, across all providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    KeyPair,
    SecurityGroup,
    SecurityGroupRule,
    ServerGroup,
    /// A node VM (with its root volume).
    Instance,
    /// The VM that runs NGINX (`load_balancer.kind = "nginx"`).
    LbInstance,
    LoadBalancer,
    TargetGroup,
    Listener,
    Pool,
    HealthMonitor,
    /// One node's membership in a load-balancer pool (OpenStack Octavia), so that removing a
    /// node removes exactly its members.
    Member,
    /// A floating IP the provider allocated (OpenStack).
    FloatingIp,
    /// A host the tool uses but does not create (`static`, or an external load balancer).
    ExistingHost,
    /// The local target's bridge, safety route and lab resolver.
    LabNetwork,
    /// A local-target host: a network namespace with its own sshd.
    LabHost,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::KeyPair => "key_pair",
            Kind::SecurityGroup => "security_group",
            Kind::SecurityGroupRule => "security_group_rule",
            Kind::ServerGroup => "server_group",
            Kind::Instance => "instance",
            Kind::LbInstance => "lb_instance",
            Kind::LoadBalancer => "load_balancer",
            Kind::TargetGroup => "target_group",
            Kind::Listener => "listener",
            Kind::Pool => "pool",
            Kind::HealthMonitor => "health_monitor",
            Kind::Member => "member",
            Kind::FloatingIp => "floating_ip",
            Kind::ExistingHost => "existing_host",
            Kind::LabNetwork => "lab_network",
            Kind::LabHost => "lab_host",
        }
    }
}

/// One resource `up` converges to. `attrs` are what the plan shows and what decides whether a
/// recorded resource still matches (a change of any attribute means "replace").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Unique within a cluster and stable across runs: `instance[acura-1]`.
    pub address: String,
    pub kind: Kind,
    /// The name the resource has in the cloud (or on the machine).
    pub name: String,
    /// `false` for what the tool only uses (existing hosts, an existing key pair).
    pub managed: bool,
    pub attrs: BTreeMap<String, String>,
    /// Addresses this one needs first; the list a provider returns is already in this order.
    pub depends_on: Vec<String>,
}

impl Resource {
    pub fn new(kind: Kind, key: Option<&str>, name: impl Into<String>) -> Self {
        let address = match key {
            Some(k) => format!("{}[{k}]", kind.as_str()),
            None => kind.as_str().to_string(),
        };
        Resource {
            address,
            kind,
            name: name.into(),
            managed: true,
            attrs: BTreeMap::new(),
            depends_on: Vec::new(),
        }
    }

    pub fn attr(mut self, key: &str, value: impl ToString) -> Self {
        self.attrs.insert(key.to_string(), value.to_string());
        self
    }

    pub fn tags(self, tags: &[(String, String)]) -> Self {
        let joined = tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.attr("tags", joined)
    }

    pub fn after(mut self, address: &str) -> Self {
        self.depends_on.push(address.to_string());
        self
    }

    pub fn unmanaged(mut self) -> Self {
        self.managed = false;
        self
    }
}

/// Where a recorded resource stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The create call was sent; its ID may or may not be known (write-ahead).
    Creating,
    Ready,
    /// Half-created or failed: `up` replaces it.
    Tainted,
    Deleting,
}

/// What the state file remembers of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub address: String,
    pub kind: Kind,
    pub name: String,
    /// The cloud's ID (`sg-…`, a UUID, a namespace name); `None` while only the request is known.
    pub id: Option<String>,
    pub status: Status,
    /// The desired attributes it was created from (the plan compares against these).
    pub attrs: BTreeMap<String, String>,
    /// What the cloud reported back: addresses, DNS names, ARNs.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    pub created_at: String,
}

/// The key in [`Recorded::outputs`] under which providers record the address the deploy host
/// uses.
pub const OUTPUT_ADDRESS: &str = "address";

impl Recorded {
    /// A record of something found in the cloud (discovery, adoption) rather than created by
    /// this run: Ready, no desired attributes, seen now.
    pub fn found(
        address: String,
        kind: Kind,
        name: String,
        id: String,
        outputs: BTreeMap<String, String>,
    ) -> Recorded {
        Recorded {
            address,
            kind,
            name,
            id: Some(id),
            status: Status::Ready,
            attrs: BTreeMap::new(),
            outputs,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// One SSH-reachable host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its hostname (no dots); the `ha_env_file` line starts with it.
    pub name: String,
    /// The address the deploy host reaches it on (`ansible_ssh_host`).
    pub address: String,
}

/// The load balancer the cluster is reached through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbEndpoint {
    /// What `lb_address` is set to and what the URLs use.
    pub address: String,
    /// The host to configure NGINX on, when the load balancer is an NGINX host.
    pub nginx_host: Option<Host>,
}

/// What provisioning hands to the bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub nodes: Vec<Host>,
    pub lb: LbEndpoint,
}

/// The host keys a cloud vouches for, read from a server's console output (cloud-init prints
/// them between `-----BEGIN SSH HOST KEY FINGERPRINTS-----` and `-----END SSH HOST KEY
/// FINGERPRINTS-----` on first boot). The SSH layer pins these instead of trusting on first use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleHostKeys {
    /// Host name → the `SHA256:…` fingerprints the console printed for it. A host that is
    /// missing had no console output (yet), or the cloud refused the call: it is pinned on
    /// first use, and the bootstrap says so.
    pub fingerprints: BTreeMap<String, Vec<String>>,
}

/// One target or member as the load balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    /// The node's name when the provider can tell, else its address or ID.
    pub target: String,
    /// `healthy`, `unhealthy`, `initial`, `draining`, `unused`, `unavailable`, or what the cloud
    /// said, lower-cased (Octavia's `ONLINE` is `healthy`, `ERROR` is `unhealthy`).
    pub state: String,
    /// The cloud's reason for a state other than healthy (`Target.FailedHealthChecks`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TargetHealth {
    pub fn healthy(&self) -> bool {
        self.state == "healthy"
    }
}

/// One listener of the cloud load balancer with its targets' health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerHealth {
    pub port: u16,
    /// `TCP`, `UDP`, `HTTP`…
    pub protocol: String,
    pub targets: Vec<TargetHealth>,
}

/// The cloud load balancer's own view of its targets (`status`): ELBv2 DescribeTargetHealth or
/// the Octavia status tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbHealth {
    /// The load balancer's own state (`active`, `provisioning`, `ONLINE`/`ERROR` for Octavia…).
    pub state: String,
    pub listeners: Vec<ListenerHealth>,
}

impl LbHealth {
    /// Every listener has targets and every target is healthy.
    pub fn healthy(&self) -> bool {
        self.listeners
            .iter()
            .all(|l| !l.targets.is_empty() && l.targets.iter().all(TargetHealth::healthy))
    }
}

/// What a provider's `refresh` found when it compared the cloud with the state (one list or
/// describe call per kind): the plan shows it, and `up` repairs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Addresses of recorded resources the cloud no longer has (deleted or terminated outside
    /// acura-ha): `up` creates them again.
    pub gone: Vec<Gone>,
    /// Resources in the cluster's own containers (a rule in its security group, a member in its
    /// pool) that the state does not hold: `up` removes them. Only kinds `up` converges are
    /// reported.
    pub extra: Vec<Recorded>,
    /// Recorded resources the cloud still has but in a state `up` changes in place (an instance
    /// stopped outside acura-ha: `up` starts it, same ID). Providers that cannot tell leave it
    /// empty.
    #[serde(default)]
    pub changed: Vec<Changed>,
}

/// One recorded resource the cloud has in a state `up` changes in place, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub address: String,
    /// `stopped outside acura-ha: up starts it`, …
    pub reason: String,
}

/// One recorded resource the cloud no longer has, and what the cloud says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gone {
    pub address: String,
    /// `deleted outside acura-ha`, `terminated outside acura-ha`, …
    pub reason: String,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}
