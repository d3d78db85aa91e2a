//! The in-memory cloud. One `Inner` behind one mutex holds every resource plus the fault
//! book, stats and the unhandled list, so a request sees one consistent snapshot.
//!
//! Asynchronous transitions (BUILD → ACTIVE, creating → available, PENDING_* → ACTIVE) are
//! evaluated lazily from deadlines stored on each resource: the status is computed at read
//! time, and `gc` (run at the start of every request) removes what has finished deleting.

use crate::config::{Config, Delays};
use crate::faults::FaultBook;
use crate::util;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Server {
    pub id: String,
    pub name: String,
    pub flavor_id: String,
    pub image_id: Option<String>,
    pub key_name: Option<String>,
    pub metadata: Map<String, Value>,
    pub tags: Vec<String>,
    pub sg_names: Vec<String>,
    pub port_ids: Vec<String>,
    /// Ports the request named (`networks: [{port}]`): detached, not deleted, with the
    /// server, as Nova keeps a port it did not create.
    pub given_ports: Vec<String>,
    /// (volume id, delete_on_termination)
    pub volumes: Vec<(String, bool)>,
    pub group: Option<String>,
    pub user_data: Option<String>,
    pub created: String,
    pub active_at: Instant,
    /// Set when the build is scripted to fail: the fault message.
    pub fail: Option<String>,
    pub gone_at: Option<Instant>,
    pub vcpus: u64,
    pub ram: u64,
    /// Stopped by `os-stop` (SHUTOFF) until `os-start`.
    pub stopped: bool,
}

impl Server {
    pub fn built(&self, now: Instant) -> bool {
        now >= self.active_at
    }
    pub fn status(&self, now: Instant) -> &'static str {
        if !self.built(now) {
            "BUILD"
        } else if self.fail.is_some() {
            "ERROR"
        } else if self.stopped {
            "SHUTOFF"
        } else {
            "ACTIVE"
        }
    }
}

pub struct Volume {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub image_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub created: String,
    pub available_at: Instant,
    pub server_id: Option<String>,
    pub attachment_id: String,
    pub gone_at: Option<Instant>,
}

pub struct Keypair {
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created: String,
}

pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policy: String,
    pub members: Vec<String>,
}

/// Octavia provisioning state: `state` until `until`, then ACTIVE (or gone for deletes).
#[derive(Clone)]
pub struct Prov {
    pub state: &'static str,
    pub until: Instant,
}

impl Prov {
    pub fn new(state: &'static str, ms: u64) -> Self {
        Prov {
            state,
            until: Instant::now() + Duration::from_millis(ms),
        }
    }
    pub fn status(&self, now: Instant) -> &'static str {
        if now < self.until {
            self.state
        } else if self.state == "PENDING_DELETE" {
            "DELETED"
        } else {
            "ACTIVE"
        }
    }
    pub fn pending(&self, now: Instant) -> bool {
        now < self.until
    }
    pub fn deleting(&self) -> bool {
        self.state == "PENDING_DELETE"
    }
}

pub struct Lb {
    pub id: String,
    pub fields: Map<String, Value>,
    pub port_id: String,
    pub prov: Prov,
}

/// A listener, pool, member or health monitor.
pub struct Child {
    pub id: String,
    pub lb_id: String,
    /// Listener of a pool (if any); pool of a member or health monitor.
    pub parent: Option<String>,
    pub fields: Map<String, Value>,
    pub prov: Prov,
}

#[derive(Default)]
pub struct Stats {
    pub total: u64,
    pub mutating: u64,
    pub token_requests: u64,
    pub unauthorized: u64,
    pub per_route: BTreeMap<String, u64>,
}

/// Request counters (admin routes excluded).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Every request to a service route, including token requests and unhandled ones.
    pub total: u64,
    /// POST/PUT/PATCH/DELETE, except `POST /identity/v3/auth/tokens`.
    pub mutating: u64,
    /// `POST /identity/v3/auth/tokens`.
    pub token_requests: u64,
    /// Requests answered 401 because their token was missing, unknown, expired or revoked.
    #[serde(default)]
    pub unauthorized: u64,
    /// Key: `"METHOD /route/{template}"`.
    pub per_route: BTreeMap<String, u64>,
}

/// Every live resource per kind, by name (or a descriptive key for nameless kinds).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Inventory {
    pub kinds: BTreeMap<String, Vec<String>>,
}

impl Inventory {
    pub fn count(&self, kind: &str) -> usize {
        self.kinds.get(kind).map_or(0, Vec::len)
    }
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.kinds.get(kind).cloned().unwrap_or_default()
    }
}

pub struct Inner {
    pub cfg: Config,
    pub delays: Delays,
    /// Issued tokens and when each expires.
    pub tokens: HashMap<String, Instant>,
    pub faults: FaultBook,
    pub stats: Stats,
    pub unhandled: Vec<String>,

    pub servers: Vec<Server>,
    pub volumes: Vec<Volume>,
    pub keypairs: Vec<Keypair>,
    pub server_groups: Vec<ServerGroup>,

    /// Neutron objects are kept as their JSON representation (Neutron is synchronous, so
    /// nothing is computed at read time), which makes generic filtering trivial.
    pub networks: Vec<Value>,
    pub subnets: Vec<Value>,
    pub ports: Vec<Value>,
    pub sgs: Vec<Value>,
    pub rules: Vec<Value>,
    pub fips: Vec<Value>,
    /// Free addresses per network id, handed out front first.
    pub pools: HashMap<String, VecDeque<String>>,

    pub lbs: Vec<Lb>,
    pub listeners: Vec<Child>,
    pub lb_pools: Vec<Child>,
    pub members: Vec<Child>,
    pub monitors: Vec<Child>,
}

impl Inner {
    pub fn new(cfg: Config) -> Self {
        let mut inner = Inner {
            delays: cfg.delays.clone(),
            cfg,
            tokens: HashMap::new(),
            faults: FaultBook::default(),
            stats: Stats::default(),
            unhandled: vec![],
            servers: vec![],
            volumes: vec![],
            keypairs: vec![],
            server_groups: vec![],
            networks: vec![],
            subnets: vec![],
            ports: vec![],
            sgs: vec![],
            rules: vec![],
            fips: vec![],
            pools: HashMap::new(),
            lbs: vec![],
            listeners: vec![],
            lb_pools: vec![],
            members: vec![],
            monitors: vec![],
        };
        inner.preload();
        inner
    }

    fn preload(&mut self) {
        let project = self.cfg.project_id.clone();
        let now = util::now_z();
        for spec in self.cfg.networks.clone() {
            let net_id = util::uuid();
            let subnet_id = util::uuid();
            let pool = spec.pool();
            let (start, end) = (
                pool.first().cloned().unwrap_or_default(),
                pool.last().cloned().unwrap_or_default(),
            );
            self.pools.insert(net_id.clone(), pool.into());
            self.networks.push(json!({
                "admin_state_up": true, "availability_zone_hints": [], "availability_zones": ["nova"],
                "created_at": now, "dns_domain": "", "id": net_id, "ipv4_address_scope": null,
                "ipv6_address_scope": null, "l2_adjacency": true, "mtu": 1450, "name": spec.name,
                "port_security_enabled": true, "project_id": project, "qos_policy_id": null,
                "revision_number": 1, "router:external": spec.external, "shared": spec.external,
                "status": "ACTIVE", "subnets": [subnet_id], "tenant_id": project, "updated_at": now,
                "vlan_transparent": false, "description": "", "is_default": spec.external, "tags": []
            }));
            self.subnets.push(json!({
                "name": spec.subnet_name, "enable_dhcp": true, "network_id": net_id, "segment_id": null,
                "project_id": project, "tenant_id": project, "dns_nameservers": [],
                "dns_publish_fixed_ip": false, "allocation_pools": [{"start": start, "end": end}],
                "host_routes": [], "ip_version": 4, "gateway_ip": spec.gateway(), "cidr": spec.cidr,
                "id": subnet_id, "created_at": now, "description": "", "ipv6_address_mode": null,
                "ipv6_ra_mode": null, "revision_number": 2, "service_types": [], "subnetpool_id": null,
                "tags": [], "updated_at": now, "router:external": spec.external
            }));
        }
        // Every project has a `default` security group (Neutron creates it on first use).
        let sg = crate::neutron::new_sg(self, "default", "Default security group", vec![]);
        self.sgs.push(sg);
    }

    /// Makes everything carrying the tag `tag` `by` older (a test-only control: the janitor's
    /// ages): servers and the volumes attached to them, load balancers and their listeners,
    /// pools, members and health monitors, and Neutron security groups, ports and floating IPs.
    /// Their creation times move back (`created`, `created_at`, Neutron's `updated_at` too);
    /// returns how many resources moved.
    pub fn age_tagged(&mut self, tag: &str, by: std::time::Duration) -> usize {
        fn back(v: &mut String, by: std::time::Duration) {
            if let Some(b) = util::backdate(v, by) {
                *v = b;
            }
        }
        fn back_fields(m: &mut Map<String, Value>, keys: &[&str], by: std::time::Duration) {
            for k in keys {
                if let Some(b) = m
                    .get(*k)
                    .and_then(Value::as_str)
                    .and_then(|t| util::backdate(t, by))
                {
                    m.insert(k.to_string(), json!(b));
                }
            }
        }
        let tagged = |v: Option<&Value>| util::str_list(v).iter().any(|t| t == tag);
        let mut aged = 0;
        let mut servers = Vec::new();
        for sv in self
            .servers
            .iter_mut()
            .filter(|sv| sv.tags.iter().any(|t| t == tag))
        {
            back(&mut sv.created, by);
            servers.push(sv.id.clone());
            aged += 1;
        }
        for v in &mut self.volumes {
            if v.server_id.as_ref().is_some_and(|s| servers.contains(s)) {
                back(&mut v.created, by);
                aged += 1;
            }
        }
        let mut lbs = Vec::new();
        for lb in self
            .lbs
            .iter_mut()
            .filter(|lb| tagged(lb.fields.get("tags")))
        {
            back_fields(&mut lb.fields, &["created_at"], by);
            lbs.push(lb.id.clone());
            aged += 1;
        }
        for c in self
            .listeners
            .iter_mut()
            .chain(self.lb_pools.iter_mut())
            .chain(self.members.iter_mut())
            .chain(self.monitors.iter_mut())
            .filter(|c| lbs.contains(&c.lb_id))
        {
            back_fields(&mut c.fields, &["created_at"], by);
            aged += 1;
        }
        for o in self
            .sgs
            .iter_mut()
            .chain(self.ports.iter_mut())
            .chain(self.fips.iter_mut())
            .filter(|o| tagged(o.get("tags")))
        {
            if let Some(m) = o.as_object_mut() {
                back_fields(m, &["created_at", "updated_at"], by);
                aged += 1;
            }
        }
        aged
    }

    /// Finish whatever has finished: servers and volumes done deleting, Octavia objects
    /// done with PENDING_DELETE. Side effects (ports, volumes, VIP ports) happen here.
    pub fn gc(&mut self) {
        let now = Instant::now();
        let gone: Vec<String> = self
            .servers
            .iter()
            .filter(|s| s.gone_at.is_some_and(|t| now >= t))
            .map(|s| s.id.clone())
            .collect();
        for id in gone {
            let idx = self.servers.iter().position(|s| s.id == id).unwrap();
            let server = self.servers.remove(idx);
            for port_id in &server.port_ids {
                if server.given_ports.contains(port_id) {
                    if let Some(p) = self.ports.iter_mut().find(|p| p["id"] == port_id.as_str()) {
                        p["device_id"] = json!("");
                        p["device_owner"] = json!("");
                        p["status"] = json!("DOWN");
                    }
                } else {
                    self.delete_port(port_id);
                }
            }
            for (vol_id, dot) in &server.volumes {
                if *dot {
                    self.volumes.retain(|v| &v.id != vol_id);
                } else if let Some(v) = self.volumes.iter_mut().find(|v| &v.id == vol_id) {
                    v.server_id = None;
                }
            }
            for g in &mut self.server_groups {
                g.members.retain(|m| m != &id);
            }
        }
        self.volumes.retain(|v| v.gone_at.is_none_or(|t| now < t));

        // Octavia: children first, then whole load balancers.
        let done = |c: &Child| c.prov.deleting() && !c.prov.pending(now);
        let dead_pools: Vec<String> = self
            .lb_pools
            .iter()
            .filter(|c| done(c))
            .map(|c| c.id.clone())
            .collect();
        let dead_listeners: Vec<String> = self
            .listeners
            .iter()
            .filter(|c| done(c))
            .map(|c| c.id.clone())
            .collect();
        self.members
            .retain(|m| !done(m) && !dead_pools.contains(m.parent.as_ref().unwrap()));
        self.monitors
            .retain(|m| !done(m) && !dead_pools.contains(m.parent.as_ref().unwrap()));
        self.lb_pools.retain(|p| !dead_pools.contains(&p.id));
        self.listeners.retain(|l| !dead_listeners.contains(&l.id));
        for l in &mut self.listeners {
            if l.fields
                .get("default_pool_id")
                .and_then(Value::as_str)
                .is_some_and(|p| dead_pools.iter().any(|d| d == p))
            {
                l.fields.insert("default_pool_id".into(), Value::Null);
            }
        }
        for p in &mut self.lb_pools {
            if p.parent
                .as_ref()
                .is_some_and(|l| dead_listeners.contains(l))
            {
                p.parent = None;
            }
        }
        let dead_lbs: Vec<(String, String)> = self
            .lbs
            .iter()
            .filter(|lb| lb.prov.deleting() && !lb.prov.pending(now))
            .map(|lb| (lb.id.clone(), lb.port_id.clone()))
            .collect();
        for (lb_id, port_id) in dead_lbs {
            self.lbs.retain(|l| l.id != lb_id);
            self.listeners.retain(|c| c.lb_id != lb_id);
            self.lb_pools.retain(|c| c.lb_id != lb_id);
            self.members.retain(|c| c.lb_id != lb_id);
            self.monitors.retain(|c| c.lb_id != lb_id);
            self.delete_port(&port_id);
        }
    }

    pub fn network(&self, id: &str) -> Option<&Value> {
        self.networks.iter().find(|n| n["id"] == id)
    }

    /// Puts the address the network reserves for a server named `name` (end-to-end tests'
    /// stand-ins for real hosts) first in its pool, if it is free.
    pub fn reserve_for(&mut self, net_id: &str, name: &str) {
        let net_name = self
            .network(net_id)
            .and_then(|n| n["name"].as_str())
            .unwrap_or_default()
            .to_string();
        let wanted = self
            .cfg
            .networks
            .iter()
            .find(|n| n.name == net_name)
            .and_then(|n| n.addresses_by_server.get(name).cloned());
        if let Some(ip) = wanted
            && let Some(pool) = self.pools.get_mut(net_id)
            && let Some(i) = pool.iter().position(|a| *a == ip)
        {
            let ip = pool.remove(i).expect("listed");
            pool.push_front(ip);
        }
    }

    /// Create a port with the next free address of `net_id`. Err: pool exhausted.
    pub fn create_port(
        &mut self,
        net_id: &str,
        name: &str,
        device_id: &str,
        device_owner: &str,
        sg_ids: Vec<String>,
        extra: Option<&Map<String, Value>>,
    ) -> Result<Value, String> {
        let subnet_id = self
            .subnets
            .iter()
            .find(|s| s["network_id"] == net_id)
            .and_then(|s| s["id"].as_str().map(String::from))
            .unwrap_or_default();
        let ip = self
            .pools
            .get_mut(net_id)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| format!("No more IP addresses available on network {net_id}."))?;
        let project = &self.cfg.project_id;
        let now = util::now_z();
        let mut port = json!({
            "admin_state_up": true, "allowed_address_pairs": [], "created_at": now,
            "description": "", "device_id": device_id, "device_owner": device_owner,
            "dns_assignment": [], "dns_domain": "", "dns_name": "", "extra_dhcp_opts": [],
            "fixed_ips": [{"ip_address": ip, "subnet_id": subnet_id}],
            "id": util::uuid(), "ip_allocation": "immediate", "mac_address": util::mac(),
            "name": name, "network_id": net_id, "port_security_enabled": true,
            "project_id": project, "revision_number": 1, "security_groups": sg_ids,
            "status": if device_id.is_empty() { "DOWN" } else { "ACTIVE" }, "tags": [],
            "tenant_id": project, "updated_at": now, "binding:vnic_type": "normal"
        });
        if let Some(extra) = extra {
            for k in [
                "description",
                "tags",
                "port_security_enabled",
                "admin_state_up",
            ] {
                if let Some(v) = extra.get(k) {
                    port[k] = v.clone();
                }
            }
        }
        self.ports.push(port.clone());
        Ok(port)
    }

    /// Remove a port, return its addresses to the pool, disassociate floating IPs.
    pub fn delete_port(&mut self, port_id: &str) {
        let Some(idx) = self.ports.iter().position(|p| p["id"] == port_id) else {
            return;
        };
        let port = self.ports.remove(idx);
        let net = port["network_id"].as_str().unwrap_or_default().to_string();
        for ip in port["fixed_ips"].as_array().into_iter().flatten() {
            if let Some(addr) = ip["ip_address"].as_str() {
                self.pools
                    .entry(net.clone())
                    .or_default()
                    .push_back(addr.to_string());
            }
        }
        for fip in &mut self.fips {
            if fip["port_id"] == port_id {
                fip["port_id"] = Value::Null;
                fip["fixed_ip_address"] = Value::Null;
                fip["status"] = json!("DOWN");
                fip["port_details"] = Value::Null;
            }
        }
    }

    pub fn inventory(&self) -> Inventory {
        let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
        let mut put = |k: &str, mut names: Vec<String>| {
            names.sort();
            kinds.insert(k.to_string(), names);
        };
        put(
            "servers",
            self.servers.iter().map(|s| s.name.clone()).collect(),
        );
        put(
            "volumes",
            self.volumes
                .iter()
                .map(|v| {
                    // Nova's boot volumes have an empty name: show size and owner instead.
                    match v.name.as_deref() {
                        Some(n) if !n.is_empty() => n.to_string(),
                        _ => format!(
                            "{}GB {}",
                            v.size,
                            v.server_id.as_deref().unwrap_or("unattached")
                        ),
                    }
                })
                .collect(),
        );
        // What each server boots from: `<server> <size>GB <source>` (size audits).
        put(
            "boot_volumes",
            self.servers
                .iter()
                .flat_map(|s| {
                    s.volumes.iter().filter_map(move |(id, _)| {
                        let v = self.volumes.iter().find(|v| &v.id == id)?;
                        let src = if v.image_id.is_some() {
                            "image"
                        } else {
                            "blank"
                        };
                        Some(format!("{} {}GB {src}", s.name, v.size))
                    })
                })
                .collect(),
        );
        put(
            "keypairs",
            self.keypairs.iter().map(|k| k.name.clone()).collect(),
        );
        put(
            "server_groups",
            self.server_groups.iter().map(|g| g.name.clone()).collect(),
        );
        put(
            "ports",
            self.ports
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default(),
                        name(p)
                    )
                })
                .collect(),
        );
        put("security_groups", self.sgs.iter().map(name).collect());
        put(
            "security_group_rules",
            self.rules
                .iter()
                .map(|r| crate::neutron::rule_label(self, r))
                .collect(),
        );
        put(
            "floating_ips",
            self.fips
                .iter()
                .map(|f| {
                    f["floating_ip_address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect(),
        );
        let fname = |c: &Child| {
            c.fields
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        put(
            "load_balancers",
            self.lbs
                .iter()
                .map(|l| {
                    l.fields
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .collect(),
        );
        put(
            "listeners",
            self.listeners
                .iter()
                .map(|l| format!("{} {}", fname(l), crate::octavia::listener_key(l)))
                .collect(),
        );
        put("pools", self.lb_pools.iter().map(fname).collect());
        put(
            "members",
            self.members
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}",
                        m.fields
                            .get("address")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        m.fields
                            .get("protocol_port")
                            .cloned()
                            .unwrap_or(Value::Null)
                    )
                })
                .collect(),
        );
        put("health_monitors", self.monitors.iter().map(fname).collect());
        Inventory { kinds }
    }

    pub fn stats_snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            total: self.stats.total,
            mutating: self.stats.mutating,
            token_requests: self.stats.token_requests,
            unauthorized: self.stats.unauthorized,
            per_route: self.stats.per_route.clone(),
        }
    }

    pub fn ms(&self, f: impl Fn(&Delays) -> u64) -> u64 {
        f(&self.delays)
    }
}
