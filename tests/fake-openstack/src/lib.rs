//! A stateful fake OpenStack cloud for acura-ha's tests: Keystone, Nova, Neutron, Cinder,
//! Glance and Octavia subsets on one loopback port, laid out like devstack
//! (`/identity/v3`, `/compute/v2.1`, `/network/v2.0`, `/volume/v3/{project}`, `/image/v2`,
//! `/load-balancer/v2/lbaas`). Bodies follow `/work/shared/openstack-api/` (the projects'
//! own API samples); state machines are real (BUILD → ACTIVE, creating → available,
//! PENDING_* → ACTIVE, 409 while PENDING_*); faults are scriptable.
//!
//! ```no_run
//! let cloud = fake_openstack::FakeCloud::start(fake_openstack::Config::default());
//! let yaml = cloud.clouds_yaml("fake");
//! // ... run the provider against cloud.auth_url() ...
//! assert!(cloud.unhandled().is_empty());
//! ```

// Handlers return early with a ready HTTP response as the error; boxing it everywhere would
// only add noise to a test fake.
#![allow(clippy::result_large_err)]

mod cinder;
pub mod config;
pub mod faults;
mod glance;
mod keystone;
mod neutron;
mod nova;
mod octavia;
mod paging;
mod quota;
mod server;
pub mod state;
mod swift;
mod util;
mod versions;

pub use config::{
    AppCredSpec, CloudTraits, Config, Delays, FlavorSpec, ImageSpec, NetworkSpec, Quotas, UserSpec,
};
pub use faults::{FaultAction, FaultRule, RetryAfter};
pub use state::{Inventory, StatsSnapshot};

use server::{App, Shared};
use state::Inner;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A running fake cloud. Stops (closing every connection) when dropped.
pub struct FakeCloud {
    app: App,
    addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCloud {
    /// Start on a random free loopback port, on its own thread and runtime (usable from
    /// blocking and async tests alike).
    pub fn start(config: Config) -> FakeCloud {
        Self::start_on(config, 0).expect("bind 127.0.0.1")
    }

    /// Start on `127.0.0.1:port` (0: any free port).
    pub fn start_on(config: Config, port: u16) -> std::io::Result<FakeCloud> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let app = Arc::new(Shared {
            base: format!("http://{addr}"),
            inner: Mutex::new(Inner::new(config)),
        });
        let (tx, rx) = watch::channel(false);
        let app2 = app.clone();
        let thread = std::thread::Builder::new()
            .name("fake-openstack".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).expect("listener");
                    server::serve(listener, app2, rx).await;
                });
                rt.shutdown_background();
            })?;
        Ok(FakeCloud {
            app,
            addr,
            shutdown: tx,
            thread: Some(thread),
        })
    }

    /// Same as [`FakeCloud::start`], for symmetry in async code (the server still runs on
    /// its own thread, so it never competes with the test's runtime).
    pub async fn start_async(config: Config) -> FakeCloud {
        Self::start(config)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.app.base.clone()
    }

    /// The Keystone v3 URL: `http://127.0.0.1:PORT/identity/v3`.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.app.base)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn config(&self) -> Config {
        self.app.lock().cfg.clone()
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.app.lock().faults.add(rule).expect("fault rule");
    }

    pub fn clear_faults(&self) {
        self.app.lock().faults.clear();
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.app.lock().stats_snapshot()
    }

    pub fn reset_stats(&self) {
        self.app.lock().stats = Default::default();
    }

    /// Every live resource by kind (finished deletions are applied first).
    pub fn inventory(&self) -> Inventory {
        let mut inner = self.app.lock();
        inner.gc();
        inner.inventory()
    }

    /// `"METHOD /path?query"` of every request the fake did not handle (answered 501).
    pub fn unhandled(&self) -> Vec<String> {
        self.app.lock().unhandled.clone()
    }

    /// Applies to resources created (or deleted) from now on.
    pub fn set_delays(&self, delays: Delays) {
        self.app.lock().delays = delays;
    }

    /// At most this many items per page of every list (`None`: unlimited), from now on.
    pub fn set_page_size(&self, page_size: Option<usize>) {
        self.app.lock().cfg.page_size = page_size;
    }

    /// Tokens issued from now on expire after `lifetime`.
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        self.app.lock().cfg.token_lifetime_ms = lifetime.as_millis() as u64;
    }

    /// Revoke every token issued so far: the next request with one answers 401.
    pub fn revoke_tokens(&self) {
        self.app.lock().tokens.clear();
    }

    /// What the health monitors say of the members at `address` (or `address:port`) from now
    /// on: `ERROR`, `OFFLINE`, `DRAINING`...; `None`: `ONLINE` again. The status tree, the
    /// member itself, and its pool, listener and load balancer (`DEGRADED`) follow.
    pub fn set_member_status(&self, address: &str, operating_status: Option<&str>) {
        let mut inner = self.app.lock();
        let map = &mut inner.cfg.cloud.member_operating_status;
        match operating_status {
            Some(s) => map.insert(address.to_string(), s.to_string()),
            None => map.remove(address),
        };
    }

    /// Make every resource carrying the tag `tag` (e.g. `acura-ha-cluster=NAME`) `by` older,
    /// as if it had been created that long before (a test-only control, for the janitor's
    /// ages): servers and their volumes, load balancers and their children, Neutron security
    /// groups, ports and floating IPs. Returns how many resources moved.
    pub fn age_tagged(&self, tag: &str, by: std::time::Duration) -> usize {
        self.app.lock().age_tagged(tag, by)
    }

    /// Change quotas at run time (e.g. to provoke a quota failure mid-test).
    pub fn set_quotas(&self, quotas: Quotas) {
        self.app.lock().cfg.quotas = quotas;
    }

    /// What the console of the server named `server` shows (`os-getConsoleOutput`); `None`:
    /// no console (404).
    pub fn set_console_log(&self, server: &str, log: Option<&str>) {
        let logs = &mut self.app.lock().cfg.console_logs;
        match log {
            Some(l) => logs.insert(server.to_string(), l.to_string()),
            None => logs.remove(server),
        };
    }

    /// A Swift container's read ACL (`X-Container-Read`, e.g. `.r:*` for a public one), as the
    /// container's GET answers it.
    pub fn set_container_read_acl(&self, container: &str, acl: Option<&str>) {
        swift::set_read_acl(container, acl);
    }

    /// Id of a preloaded network by name.
    pub fn network_id(&self, name: &str) -> Option<String> {
        let inner = self.app.lock();
        inner
            .networks
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str().map(String::from))
    }

    /// Id of a preloaded subnet by name.
    pub fn subnet_id(&self, name: &str) -> Option<String> {
        let inner = self.app.lock();
        inner
            .subnets
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str().map(String::from))
    }

    /// Pre-create a keypair (as if imported earlier).
    pub fn add_keypair(&self, name: &str, public_key: &str) {
        self.app.lock().keypairs.push(state::Keypair {
            name: name.into(),
            public_key: public_key.into(),
            fingerprint: "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff".into(),
            created: util::now_z(),
        });
    }

    /// Pre-create a server group (someone else's); returns its id.
    pub fn add_server_group(&self, name: &str, policy: &str) -> String {
        let id = util::uuid();
        self.app.lock().server_groups.push(state::ServerGroup {
            id: id.clone(),
            name: name.into(),
            policy: policy.into(),
            members: vec![],
        });
        id
    }

    /// The stored tags of the security group named `name` (`None`: no such group).
    pub fn security_group_tags(&self, name: &str) -> Option<Vec<String>> {
        let inner = self.app.lock();
        inner
            .sgs
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| util::str_list(g.get("tags")))
    }

    /// Pre-create a security group (with Neutron's two default egress rules); returns its id.
    pub fn add_security_group(&self, name: &str, description: &str) -> String {
        let mut inner = self.app.lock();
        let sg = neutron::new_sg(&mut inner, name, description, vec![]);
        let id = sg["id"].as_str().unwrap_or_default().to_string();
        inner.sgs.push(sg);
        id
    }

    /// A `clouds.yaml` with one cloud, `cloud_name`, for the first configured user
    /// (password auth, project scope, public interface).
    pub fn clouds_yaml(&self, cloud_name: &str) -> String {
        let cfg = self.config();
        let user = cfg.users.first().cloned().unwrap_or(UserSpec {
            id: String::new(),
            name: String::new(),
            password: String::new(),
        });
        format!(
            "clouds:\n  {cloud_name}:\n    auth_type: password\n    auth:\n      auth_url: {auth}\n      username: \"{}\"\n      password: \"{}\"\n      project_name: \"{}\"\n      project_domain_name: \"{}\"\n      user_domain_name: \"{}\"\n    region_name: \"{}\"\n    interface: public\n    identity_api_version: 3\n",
            user.name,
            user.password,
            cfg.project_name,
            cfg.domain_name,
            cfg.domain_name,
            cfg.region,
            auth = self.auth_url(),
        )
    }

    /// The same cloud through an application credential (the first configured one).
    pub fn clouds_yaml_app_credential(&self, cloud_name: &str) -> String {
        let cfg = self.config();
        let ac = cfg
            .application_credentials
            .first()
            .cloned()
            .expect("an application credential");
        format!(
            "clouds:\n  {cloud_name}:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {auth}\n      application_credential_id: \"{}\"\n      application_credential_secret: \"{}\"\n    region_name: \"{}\"\n    interface: public\n    identity_api_version: 3\n",
            ac.id,
            ac.secret,
            cfg.region,
            auth = self.auth_url(),
        )
    }

    /// Stop now (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.stop();
    }
}
