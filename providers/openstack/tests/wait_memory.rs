//! Issue 12 item 2: waits that adapt to the cloud. On a cloud the provider has not seen, a wait
//! polls soon and backs off; what each kind of transition took there is remembered (in the
//! user's cache directory, here the test's home), and the next run's waits poll around that
//! time instead of all the way up to it. Counted in requests, not timed: the fake's delays are
//! fixed, so the second `provision` must ask for the servers and the load balancer fewer times.

mod common;

use acura_ha_api::provider::{Journal, Provider};
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::wait::Pace;
use common::{Cloud, Records, parse_spec};
use fake_openstack::{Config, Delays, FakeCloud, StatsSnapshot};
use serde_json::Value;

const SERVERS: &str = "GET /compute/v2.1/servers/detail";
const LB: &str = "GET /load-balancer/v2/lbaas/loadbalancers/{id}";

fn calls(st: &StatsSnapshot, route: &str) -> u64 {
    st.per_route.get(route).copied().unwrap_or(0)
}

/// A cloud whose builds take long enough for the cold schedule to poll many times.
fn start() -> Cloud {
    Cloud::with_config(Config {
        page_size: Some(2),
        delays: Delays {
            server_build: 700,
            server_delete: 300,
            volume_create: 100,
            volume_delete: 100,
            lb_create: 1000,
            lb_update: 100,
            lb_delete: 300,
        },
        ..Config::default()
    })
}

/// The provider at the default schedule's first delay and cap, scaled to the fake's quick
/// delays.
fn provider(cloud: &Cloud) -> OpenStackProvider {
    cloud.provider_paced(Pace::scaled(0.1))
}

fn spec() -> acura_ha_api::spec::ClusterSpec {
    parse_spec(
        "[cluster]\nname = \"acura-memo\"\n\
         [nodes]\ncount = 3\nhostname_prefix = \"memo\"\nvolume_size_gb = 200\n\
         [load_balancer]\nkind = \"cloud\"\n\
         [access]\nadmin_cidrs = [\"198.51.100.7/32\"]\nssh_agent = true\n\
         [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
         network = \"acura-net\"\npublic_key_file = \"id.pub\"\n",
    )
}

const OCTAVIA_DOC: &str = "GET /load-balancer/";

/// `(servers polls, load balancer polls)` of one `provision`, and of the `destroy` after it.
async fn cycle(fake: &FakeCloud, p: &OpenStackProvider) -> ((u64, u64), (u64, u64)) {
    cycle_stats(fake, p).await.0
}

/// The same, with whether `provision` read Octavia's version document.
async fn cycle_stats(fake: &FakeCloud, p: &OpenStackProvider) -> (((u64, u64), (u64, u64)), bool) {
    let spec = spec();
    let mut j = Records::default();
    fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision");
    let up = fake.stats();
    assert!(
        p.refresh(&spec, &j.all())
            .await
            .unwrap()
            .unwrap()
            .is_empty(),
        "provision converged"
    );
    fake.reset_stats();
    p.destroy(&spec, &mut j).await.expect("destroy");
    let down = fake.stats();
    (
        (
            (calls(&up, SERVERS), calls(&up, LB)),
            (calls(&down, SERVERS), calls(&down, LB)),
        ),
        calls(&up, OCTAVIA_DOC) > 0,
    )
}

#[tokio::test]
async fn the_second_run_polls_around_what_the_first_one_saw() {
    let cloud = start();
    let (fake, dir) = (&cloud.fake, &cloud.dir);
    let before = fake.inventory();
    let p = provider(&cloud);
    let memory = dir.path().join(".cache/acura-ha/openstack-waits.json");
    assert!(!memory.exists());

    let ((cold_up, cold_down), doc_read) = cycle_stats(fake, &p).await;
    assert!(doc_read, "a cloud not seen: Octavia's version is checked");
    eprintln!("cold: up {cold_up:?}, down {cold_down:?}");
    // The cold schedule (50 ms, then 50 ms + 10 % of the elapsed) polls a 1 s create ~11 times.
    assert!(cold_up.0 >= 6 && cold_up.1 >= 8, "cold up {cold_up:?}");

    // Remembered per kind and per service endpoint, in the cache directory; no secret.
    let text = std::fs::read_to_string(&memory).expect("the waits' memory is written");
    let v: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = v["waits"].as_object().unwrap().keys().collect();
    for kind in [
        "servers ACTIVE after create",
        "load balancer ACTIVE after create",
        "servers deleted",
        "load balancer deleted",
    ] {
        assert!(
            keys.iter()
                .any(|k| k.ends_with(kind) && k.starts_with("http://127.0.0.1:")),
            "{kind} in {keys:?}"
        );
    }
    assert!(
        !text.contains("password") && !text.contains("secret"),
        "{text}"
    );

    // The same cloud again: the polls gather inside the bracket the first run saw.
    let ((warm_up, warm_down), doc_read) = cycle_stats(fake, &p).await;
    assert!(
        !doc_read,
        "Octavia's version, seen enough an hour ago, is not read again"
    );
    eprintln!("warm: up {warm_up:?}, down {warm_down:?}");
    assert!(
        warm_up.0 * 2 <= cold_up.0 && warm_up.1 * 2 <= cold_up.1,
        "warm up {warm_up:?} vs cold {cold_up:?}"
    );
    assert!(
        warm_down.0 <= cold_down.0 && warm_down.1 <= cold_down.1,
        "warm down {warm_down:?} vs cold {cold_down:?}"
    );
    assert_eq!(fake.inventory(), before, "destroy left something behind");

    // Without a memory every run is cold.
    let forgetful = provider(&cloud).wait_memory(None);
    let (again, _) = cycle(fake, &forgetful).await;
    assert!(again.1 >= 8, "no memory: cold again {again:?}");
}

/// A memory file that is not JSON is an empty memory: the run is cold and rewrites it.
#[tokio::test]
async fn a_broken_memory_file_only_costs_a_cold_run() {
    let cloud = start();
    let (fake, dir) = (&cloud.fake, &cloud.dir);
    let memory = dir.path().join(".cache/acura-ha/openstack-waits.json");
    std::fs::create_dir_all(memory.parent().unwrap()).unwrap();
    std::fs::write(&memory, "{\"waits\": [").unwrap();
    let p = provider(&cloud);
    let (up, _) = cycle(fake, &p).await;
    assert!(up.1 >= 8, "cold {up:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&memory).unwrap()).unwrap();
    assert!(v["waits"].as_object().is_some_and(|w| !w.is_empty()));
}

/// The last `hi` remembered for a kind of transition.
fn last_hi(memory: &std::path::Path, kind: &str) -> f64 {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(memory).unwrap()).unwrap();
    let (_, seen) = v["waits"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(kind))
        .unwrap_or_else(|| panic!("{kind} remembered"));
    seen.as_array().unwrap().last().unwrap()["hi"]
        .as_f64()
        .unwrap()
}

/// A cloud that became faster (an image now cached, say): the memory says the load balancer
/// took 2.9 to 3 s (a tight bracket whose `lo` was carried as often as it may be), the fake
/// makes it in 1 s. The next run checks that `lo` and sees it done, the bracket halves from
/// there: the memory does not keep the old pace.
#[tokio::test]
async fn a_cloud_that_became_faster_is_noticed() {
    const KIND: &str = "load balancer ACTIVE after create";
    let cloud = start();
    let (fake, dir) = (&cloud.fake, &cloud.dir);
    let p = provider(&cloud);
    let memory = dir.path().join(".cache/acura-ha/openstack-waits.json");
    cycle(fake, &p).await;
    // As if an earlier run had seen 2.9 s < T <= 3.0 s.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&memory).unwrap()).unwrap();
    let key = v["waits"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with(KIND))
        .cloned()
        .unwrap();
    v["waits"][&key] = serde_json::json!([{"lo": 2.9, "hi": 3.0, "at": 1, "carried": 3}]);
    std::fs::write(&memory, v.to_string()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        cycle(fake, &p).await;
        seen.push(last_hi(&memory, KIND));
    }
    eprintln!("hi after each run: {seen:?}");
    assert!(
        seen[1] <= 1.6 && seen[2] <= 1.6,
        "still at the old pace: {seen:?}"
    );
}
