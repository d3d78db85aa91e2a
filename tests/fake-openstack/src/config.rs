//! The fake cloud's configuration: who may log in, what is preloaded, quotas and delays.
//!
//! Everything has a default so `Config::default()` gives a ready devstack-like cloud:
//! project `acura`, user `acura`/`secret` in domain `Default`, network `acura-net`
//! (subnet `acura-subnet`, 10.0.0.0/24), external network `public`, the usual flavors
//! and Ubuntu images plus decoys.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Region id in the catalog.
    pub region: String,
    pub project_id: String,
    pub project_name: String,
    /// Domain of the project (and of the users), by id and name.
    pub domain_id: String,
    pub domain_name: String,
    pub users: Vec<UserSpec>,
    pub application_credentials: Vec<AppCredSpec>,
    /// Networks and their single subnet. The first non-external one is the tenant network.
    pub networks: Vec<NetworkSpec>,
    /// Name of the external network floating IPs come from.
    pub external_network: String,
    pub flavors: Vec<FlavorSpec>,
    pub images: Vec<ImageSpec>,
    pub quotas: Quotas,
    pub delays: Delays,
    /// The most items one page of a list holds, whatever `limit` asks for (the services'
    /// `max_limit` / `pagination_max_limit` / `api_limit_max`). `None`: unlimited, one page
    /// unless the client asks for a `limit`.
    pub page_size: Option<usize>,
    /// What `os-getConsoleOutput` answers per server name (cloud-init's boot log with its SSH
    /// host key fingerprints); a server without one answers 404, as Nova does with no console.
    #[serde(default)]
    pub console_logs: std::collections::BTreeMap<String, String>,
    /// How long a Keystone token is valid, in milliseconds (Keystone's default: one hour).
    /// A request with an expired token answers 401.
    pub token_lifetime_ms: u64,
    /// Real-cloud differences (issue 13): which newest API versions the services offer, which
    /// Neutron extensions are missing, and what Octavia's health monitors report per member.
    #[serde(flatten)]
    pub cloud: CloudTraits,
}

/// How this cloud differs from the newest devstack (issue 13 items 4, 5 and 9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CloudTraits {
    /// The newest compute microversion (the version document's `version`; a request asking
    /// for more answers 406, as Nova does).
    pub compute_max_version: String,
    /// The newest block-storage microversion (Cinder's version document; more answers 406).
    pub volume_max_version: String,
    /// The newest load-balancer API version Octavia's root document lists (`v2.x`).
    pub load_balancer_max_version: String,
    /// Neutron extension aliases to leave out of `GET /v2.0/extensions`: without
    /// `tag-creation` a create body with `tags` answers 400 "Unrecognized attribute(s)
    /// 'tags'"; without `standard-attr-tag` too, and objects have no `tags` and `/tags` is 404.
    pub neutron_without_extensions: Vec<String>,
    /// A member's `operating_status` by its address (or `address:port`), as a health monitor
    /// would set it (`ERROR`, `OFFLINE`, ...); unlisted members are `ONLINE`.
    pub member_operating_status: std::collections::BTreeMap<String, String>,
    /// Octavia answers the single-call fully populated create (`listeners`/`pools` in the load
    /// balancer's body) with 501, as a provider driver without it does (`ProviderNotImplementedError`).
    pub octavia_refuses_full_create: bool,
}

impl Default for CloudTraits {
    fn default() -> Self {
        CloudTraits {
            compute_max_version: crate::nova::MAX_VERSION.into(),
            volume_max_version: "3.71".into(),
            load_balancer_max_version: "2.30".into(),
            neutron_without_extensions: vec![],
            member_operating_status: Default::default(),
            octavia_refuses_full_create: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSpec {
    pub id: String,
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppCredSpec {
    pub id: String,
    pub name: String,
    pub secret: String,
    /// Id of the owning user (one of `users`).
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet_name: String,
    pub cidr: String,
    #[serde(default)]
    pub external: bool,
    /// Fixed IPs handed out in this order (ports of servers, LB VIPs, floating IPs).
    /// Empty: `.10` to `.250` of a /24 `cidr`.
    #[serde(default)]
    pub address_pool: Vec<String>,
    /// A server of this name gets this address (if it is free), whatever order servers are
    /// created in: stand-ins for hosts that exist (end-to-end tests).
    #[serde(default)]
    pub addresses_by_server: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlavorSpec {
    pub id: String,
    pub name: String,
    pub vcpus: u64,
    /// MiB, as Nova counts it.
    pub ram: u64,
    /// GB of root disk (0 for boot-from-volume flavors).
    pub disk: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSpec {
    pub id: String,
    pub name: String,
    #[serde(default = "active")]
    pub status: String,
    #[serde(default)]
    pub min_disk: u64,
}

fn active() -> String {
    "active".into()
}

/// Limits per project; -1 means unlimited (as the services do).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    pub cores: i64,
    /// MiB.
    pub ram: i64,
    pub instances: i64,
    pub server_groups: i64,
    pub key_pairs: i64,
    pub security_group: i64,
    pub security_group_rule: i64,
    pub port: i64,
    pub floatingip: i64,
    pub volumes: i64,
    pub gigabytes: i64,
    pub load_balancer: i64,
    pub listener: i64,
    pub pool: i64,
    pub member: i64,
    pub health_monitor: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            cores: 200,
            ram: 512_000,
            instances: 20,
            server_groups: 10,
            key_pairs: 100,
            security_group: 10,
            security_group_rule: 100,
            port: 50,
            floatingip: 50,
            volumes: 20,
            gigabytes: 5000,
            load_balancer: 10,
            listener: -1,
            pool: -1,
            member: -1,
            health_monitor: -1,
        }
    }
}

/// How long each asynchronous transition takes, in milliseconds. Small defaults keep tests
/// fast; a benchmark can set realistic (scaled) values. A change applies to resources
/// created (or deleted) after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Delays {
    /// Nova server BUILD → ACTIVE (or ERROR).
    pub server_build: u64,
    /// Nova server `deleting` → gone.
    pub server_delete: u64,
    /// Cinder volume creating → available.
    pub volume_create: u64,
    /// Cinder volume deleting → gone.
    pub volume_delete: u64,
    /// Octavia LB PENDING_CREATE → ACTIVE.
    pub lb_create: u64,
    /// Octavia LB (and child) PENDING_UPDATE/PENDING_CREATE → ACTIVE after a child change.
    pub lb_update: u64,
    /// Octavia LB PENDING_DELETE → gone.
    pub lb_delete: u64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            server_build: 150,
            server_delete: 50,
            volume_create: 50,
            volume_delete: 50,
            lb_create: 150,
            lb_update: 80,
            lb_delete: 80,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: "RegionOne".into(),
            // A project of its own per cloud, as two real clouds have: what the provider
            // remembers of one cloud (its waits' timings, keyed by endpoint and project) never
            // meets another fake that happens to get the same port later.
            project_id: uuid::Uuid::new_v4().simple().to_string(),
            project_name: "acura".into(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
            users: vec![UserSpec {
                id: "ee4dfb6e5540447cb3741905149d9b6e".into(),
                name: "acura".into(),
                password: "secret".into(),
            }],
            application_credentials: vec![AppCredSpec {
                id: "423f19a4ac1e4f48bbb4180756e6eb6c".into(),
                name: "acura-ha".into(),
                secret: "appcred-secret".into(),
                user_id: "ee4dfb6e5540447cb3741905149d9b6e".into(),
            }],
            networks: vec![
                NetworkSpec {
                    name: "acura-net".into(),
                    subnet_name: "acura-subnet".into(),
                    cidr: "10.0.0.0/24".into(),
                    external: false,
                    address_pool: vec![],
                    addresses_by_server: Default::default(),
                },
                NetworkSpec {
                    name: "public".into(),
                    subnet_name: "public-subnet".into(),
                    cidr: "172.24.4.0/24".into(),
                    external: true,
                    address_pool: vec![],
                    addresses_by_server: Default::default(),
                },
            ],
            external_network: "public".into(),
            flavors: vec![
                flavor("2", "m1.small", 1, 2048),
                flavor("4", "m1.large", 4, 8192),
                flavor("5", "m1.xlarge", 8, 16384),
                flavor("6", "m1.2xlarge", 16, 32768),
            ],
            images: vec![
                image("1bea47ed-f6a9-463b-b423-14b9cca9ad27", "ubuntu-20.04"),
                image("70a599e0-31e7-49b7-b260-868f441e862b", "ubuntu-24.04"),
                image(
                    "155d900f-4e14-4e4c-a73d-069cbf4541e6",
                    "ubuntu-20.04-minimal",
                ),
                image("a2459075-d96c-40d5-893e-577ff92e721c", "Ubuntu 20.04 (old)"),
                image(
                    "c9a3e8f4-3d0c-4b59-8d1e-0e2c1f3e9a71",
                    "cirros-0.6.2-x86_64-disk",
                ),
            ],
            quotas: Quotas::default(),
            delays: Delays::default(),
            page_size: None,
            console_logs: Default::default(),
            token_lifetime_ms: 3_600_000,
            cloud: CloudTraits::default(),
        }
    }
}

fn flavor(id: &str, name: &str, vcpus: u64, ram: u64) -> FlavorSpec {
    FlavorSpec {
        id: id.into(),
        name: name.into(),
        vcpus,
        ram,
        disk: 20,
    }
}

fn image(id: &str, name: &str) -> ImageSpec {
    ImageSpec {
        id: id.into(),
        name: name.into(),
        status: "active".into(),
        min_disk: 0,
    }
}

impl NetworkSpec {
    /// The pool to hand out: the configured one, or `.10`..`.250` of the /24.
    pub fn pool(&self) -> Vec<String> {
        if !self.address_pool.is_empty() {
            return self.address_pool.clone();
        }
        let base = self.cidr.split('/').next().unwrap_or("10.0.0.0");
        let octets: Vec<&str> = base.split('.').collect();
        if octets.len() != 4 {
            return vec![];
        }
        (10..=250)
            .map(|i| format!("{}.{}.{}.{i}", octets[0], octets[1], octets[2]))
            .collect()
    }

    pub fn gateway(&self) -> String {
        let base = self.cidr.split('/').next().unwrap_or("10.0.0.0");
        let mut o: Vec<String> = base.split('.').map(String::from).collect();
        if o.len() == 4 {
            o[3] = "1".into();
        }
        o.join(".")
    }
}
