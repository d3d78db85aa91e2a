//! Requests and wall time of `up` (provision) and `down` (destroy) against the fake cloud with
//! realistic delays scaled down 10×, next to the critical path those delays allow.
//!
//! `cargo run -p acura-ha-openstack --example bench -- --nodes 3|9 [--lb cloud|nginx] [--routes]
//! [--page-size N] [--profile small|scaled] [--no-fip] [--pace MIN,MAX,SHARE] [--runs N]` (`--page-size`: the
//! fake's lists come N items a page; `--pace`: the waits' first delay and cap in seconds and
//! their share of the elapsed time, before the profile's scale)
//!
//! No assertion: it prints the figures (providers/openstack/README.md keeps the last ones).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use acura_ha_api::desired::listener_key;
use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::tables::LISTENERS;
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::wait::Pace;
use fake_openstack::{Config, Delays, FakeCloud, StatsSnapshot};

/// The journal, counting what is written to it.
#[derive(Default)]
struct Counting {
    rows: Vec<Recorded>,
    writes: u64,
}

impl Journal for Counting {
    fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
        self.writes += 1;
        match self.rows.iter_mut().find(|x| x.address == r.address) {
            Some(x) => *x = r,
            None => self.rows.push(r),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.writes += 1;
        self.rows.retain(|x| x.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.rows.iter().find(|x| x.address == address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.rows.clone()
    }
}

/// A real cloud's delays (server build 30 s, volume 10 s, Octavia create 60 s, each child
/// update 5 s, deletes 10 s) divided by 10.
/// Two timing profiles, so the waits are not tuned to one cloud: `scaled` (the default: a real
/// cloud's delays scaled down 10×, with the pace scaled alike) and `small` (a small real cloud
/// in real time: build 2 s, volume 1 s, Octavia create 3 s, every child change 1 s).
fn delays(profile: &str) -> (Delays, Pace) {
    match profile {
        "small" => (
            Delays {
                server_build: 2000,
                server_delete: 1000,
                volume_create: 1000,
                volume_delete: 1000,
                lb_create: 3000,
                lb_update: 1000,
                lb_delete: 1000,
            },
            Pace::default(),
        ),
        _ => (
            Delays {
                server_build: 3000,
                server_delete: 1000,
                volume_create: 1000,
                volume_delete: 1000,
                lb_create: 6000,
                lb_update: 500,
                lb_delete: 1000,
            },
            Pace::scaled(0.1),
        ),
    }
}

/// The OpenStack example's cluster: `nodes` nodes, floating IPs unless `fip` is off (each run
/// gives it a lineage, as `up` does: every resource is tagged with it, #9.4).
fn spec(nodes: usize, lb: &str, fip: bool) -> ClusterSpec {
    let fip = if fip {
        "floating_ip_network = \"public\""
    } else {
        ""
    };
    let lb_flavor = if lb == "nginx" {
        "lb_flavor = \"m1.small\""
    } else {
        ""
    };
    let text = format!(
        r#"
[cluster]
name = "bench"
[nodes]
count = {nodes}
hostname_prefix = "bench"
volume_size_gb = 200
[load_balancer]
kind = "{lb}"
[access]
admin_cidrs = ["198.51.100.7/32"]
ssh_agent = true
[openstack]
cloud = "fake"
flavor = "m1.xlarge"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "id.pub"
{lb_flavor}
{fip}
"#
    );
    let spec: ClusterSpec = toml::from_str(&text).expect("spec");
    assert!(spec.validate().is_empty(), "{:?}", spec.validate());
    spec
}

fn ms(d: u64) -> f64 {
    d as f64 / 1000.0
}

fn report(what: &str, st: &StatsSnapshot, wall: Duration, critical: f64, routes: bool) {
    let ratio = st.total as f64 / st.mutating.max(1) as f64;
    let wall = wall.as_secs_f64();
    println!(
        "{what}: {} requests ({} token), {} mutating, ratio {ratio:.2}; wall {wall:.2} s, critical path {critical:.2} s, wall/critical {:.3}",
        st.total,
        st.token_requests,
        st.mutating,
        wall / critical
    );
    if routes {
        for (route, n) in &st.per_route {
            println!("    {n:>4}  {route}");
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let nodes: usize = arg("--nodes").and_then(|n| n.parse().ok()).unwrap_or(3);
    let lb = arg("--lb").unwrap_or_else(|| "cloud".into());
    let routes = args.iter().any(|a| a == "--routes");
    let page_size: Option<usize> = arg("--page-size").and_then(|n| n.parse().ok());

    let profile = arg("--profile").unwrap_or_else(|| "scaled".into());
    let (d, mut pace) = delays(&profile);
    // `--pace MIN,MAX,SHARE` (seconds, before the profile's scale): another wait schedule, to
    // weigh wall time against requests.
    if let Some(p) = arg("--pace") {
        let v: Vec<f64> = p.split(',').filter_map(|x| x.parse().ok()).collect();
        assert_eq!(v.len(), 3, "--pace MIN,MAX,SHARE");
        pace.min = Duration::from_secs_f64(v[0] * pace.scale);
        pace.max = Duration::from_secs_f64(v[1] * pace.scale);
        pace.share = v[2];
    }
    let cloud = FakeCloud::start(Config {
        delays: d.clone(),
        page_size,
        ..Config::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("clouds.yaml"), cloud.clouds_yaml("fake")).expect("write");
    std::fs::write(
        dir.path().join("id.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2bmgO5vLp2Wq5l2B6Cq9a1PZt0W8S8pQ0bW3pH2mL bench\n",
    )
    .expect("write");
    let mut env = BTreeMap::new();
    env.insert(
        "OS_CLIENT_CONFIG_FILE".to_string(),
        dir.path().join("clouds.yaml").display().to_string(),
    );
    env.insert("HOME".into(), dir.path().display().to_string());
    let provider = OpenStackProvider::new(dir.path().to_path_buf())
        .quiet(true)
        .pace(pace)
        .env(env);
    let spec = spec(nodes, &lb, !args.iter().any(|a| a == "--no-fip"));
    let before = cloud.inventory();

    // The critical path of provisioning: the servers' ports first (their addresses known at
    // once, Neutron answers synchronously), then the servers build in parallel (a boot volume
    // is made within the build) while the load balancer is created fully populated in one
    // call (listeners, pools, monitors and the ports' addresses as members, issue 12):
    //   cloud: max(server_build, lb_create)
    //   nginx: server_build (the NGINX VM builds with the nodes)
    // Before issue 12 the children went one at a time and the members after the servers:
    //   max(server_build, lb_create + 3·L·lb_update) + L·lb_update   (L listeners)
    let l = LISTENERS.len() as f64;
    let per_child =
        ms(d.server_build).max(ms(d.lb_create) + 3.0 * l * ms(d.lb_update)) + l * ms(d.lb_update);
    let critical_up = if lb == "cloud" {
        ms(d.server_build).max(ms(d.lb_create))
    } else {
        ms(d.server_build)
    };
    // Destroying: the load balancer (cascade) and the servers in parallel.
    //   cloud: max(server_delete, lb_delete); nginx: server_delete
    let critical_down = if lb == "cloud" {
        ms(d.server_delete).max(ms(d.lb_delete))
    } else {
        ms(d.server_delete)
    };
    println!(
        "fake cloud delays (ms): server build {}, volume {}, LB create {}, LB child update {}, LB delete {}, server delete {}; {nodes} nodes, load_balancer.kind = {lb}, {} listeners ({}); page size {}",
        d.server_build,
        d.volume_create,
        d.lb_create,
        d.lb_update,
        d.lb_delete,
        d.server_delete,
        LISTENERS.len(),
        LISTENERS
            .iter()
            .map(listener_key)
            .collect::<Vec<_>>()
            .join(" "),
        page_size.map_or("unlimited".to_string(), |n| n.to_string())
    );
    if lb == "cloud" {
        println!(
            "critical path of up = max(server build {:.1}, fully populated LB create {:.1}) = {critical_up:.2} s (child by child it was max(build, LB create + {} children x {:.1}) + {} member updates = {per_child:.2} s)",
            ms(d.server_build),
            ms(d.lb_create),
            3 * LISTENERS.len(),
            ms(d.lb_update),
            LISTENERS.len(),
        );
        println!(
            "critical path of down = max(LB cascade delete {:.1}, server delete {:.1}) = {critical_down:.2} s",
            ms(d.lb_delete),
            ms(d.server_delete)
        );
    } else {
        println!(
            "critical path of up = server build {critical_up:.2} s; of down = server delete {critical_down:.2} s"
        );
    }

    // Twice: on a cloud the waits have not seen (cold), then again (warm: they poll around
    // what each transition took the first time, `src/memory.rs`), unless `--runs 1`.
    let runs: usize = arg("--runs").and_then(|n| n.parse().ok()).unwrap_or(2);
    for run in 0..runs {
        let label = if run == 0 { "cold" } else { "warm" };
        // Each run is a new cluster's first `up` on this cloud (a state never written: its
        // lineage is new), as when test environments come and go; the waits' memory is the
        // cloud's, shared by them.
        let spec = spec.with_new_lineage(format!("0b1e5c1e-bench-lineage-{run}"));
        let mut journal = Counting::default();
        cloud.reset_stats();
        let t = Instant::now();
        let inv = provider
            .provision(&spec, &mut journal)
            .await
            .expect("provision");
        let wall = t.elapsed();
        report(
            &format!("{label} up  "),
            &cloud.stats(),
            wall,
            critical_up,
            routes,
        );
        println!("      journal writes {}", journal.writes);
        assert_eq!(inv.nodes.len(), nodes);

        journal.writes = 0;
        cloud.reset_stats();
        let t = Instant::now();
        provider
            .destroy(&spec, &mut journal)
            .await
            .expect("destroy");
        let wall = t.elapsed();
        report(
            &format!("{label} down"),
            &cloud.stats(),
            wall,
            critical_down,
            routes,
        );
        println!("      journal writes {}", journal.writes);
        assert_eq!(cloud.inventory(), before, "down left something behind");
        assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
    }
}
