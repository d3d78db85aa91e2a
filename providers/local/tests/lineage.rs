//! Two states, one cluster name, one machine (run as root; #9.4): lab A (lineage L1) is made;
//! B (the same cluster name in another cluster directory, lineage L2) names the same bridge,
//! veths and namespaces. B's `provision` is refused before it changes anything, B's `destroy`
//! leaves A alone, and only A's own `destroy` removes A. A lab whose interfaces carry no alias
//! (made before lineages) is adopted by its own state and labelled.

mod common;

use acura_ha_api::model::Status;
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_local::LabNames;
use common::*;

const L1: &str = "6f1d2c3b-0000-4000-8000-00000000a001";
const L2: &str = "6f1d2c3b-0000-4000-8000-00000000b002";

/// A lab of `name` on `subnet` owned by the state of `lineage`.
fn lab(name: &str, subnet: &str, lineage: &str) -> Lab {
    let mut lab = Lab::new(name, subnet, 3);
    lab.spec = lab.spec.with_lineage(Some(lineage.to_string()));
    lab
}

/// The alias of `dev` (in `namespace`), "" when it has none.
async fn alias(namespace: Option<&str>, dev: &str) -> String {
    let mut args = Vec::new();
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", dev]);
    let (rc, out, err) = sh("/usr/sbin/ip", &args).await;
    assert_eq!(rc, 0, "{dev}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["ifalias"].as_str().unwrap_or_default().to_string()
}

/// Every lab interface: the bridge, each veth's root side, each namespace's eth0.
fn interfaces(n: &LabNames) -> Vec<(Option<String>, String)> {
    let mut all = vec![(None, n.bridge.clone())];
    for h in &n.hosts {
        all.push((None, h.veth.clone()));
        all.push((Some(h.namespace.clone()), "eth0".to_string()));
    }
    all
}

async fn aliases(n: &LabNames) -> Vec<String> {
    let mut out = Vec::new();
    for (ns, dev) in interfaces(n) {
        out.push(alias(ns.as_deref(), &dev).await);
    }
    out
}

/// What the machine shows of the lab: its interfaces (`ip -j link`, counters left out), the
/// namespaces and the IPv4 routes of its subnet and bridge.
async fn machine(n: &LabNames) -> (Vec<serde_json::Value>, Vec<String>, String) {
    let (_, out, _) = sh("/usr/sbin/ip", &["-j", "link", "show"]).await;
    let links: Vec<serde_json::Value> = serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .expect("ip -j link")
        .into_iter()
        .filter(|l| {
            l["ifname"]
                .as_str()
                .is_some_and(|i| i.starts_with(&n.bridge))
        })
        .collect();
    let (_, netns, _) = sh("/usr/sbin/ip", &["netns", "list"]).await;
    let prefix = format!("ah-{}-", n.cluster);
    let netns = netns
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let subnet = n.subnet.to_string();
    // IPv4 only: the kernel adds the veths' IPv6 link-local routes on its own time.
    let (_, routes, _) = sh("/usr/sbin/ip", &["-4", "route", "show", "table", "all"]).await;
    let routes = routes
        .lines()
        .filter(|l| l.contains(&subnet) || l.contains(&n.bridge))
        .collect::<Vec<_>>()
        .join("\n");
    (links, netns, routes)
}

/// A's hosts answer SSH as themselves and A's refresh finds nothing changed.
async fn a_is_intact(a: &Lab, ja: &MemJournal, pids: &[i32], when: &str) {
    for &pid in pids {
        assert!(running(pid), "{when}: A's process {pid} stopped");
    }
    for h in &a.names().hosts {
        let (rc, out, err) = ssh(a, &h.address.to_string(), "hostname").await;
        assert_eq!((rc, out.trim()), (0, h.name.as_str()), "{when}: {err}");
    }
    let drift = a
        .provider
        .refresh(&a.spec, &ja.all())
        .await
        .expect("refresh")
        .expect("the local target refreshes");
    assert!(drift.is_empty(), "{when}: {drift:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_state_of_the_same_cluster_name_is_refused_and_left_alone() {
    let a = lab("lt-lineage", "10.213.186.0/24", L1);
    let mut ja = MemJournal::default();
    a.provision(&mut ja).await;
    let a_names = a.names();
    let a_records = by_address(&ja);
    let a_pids = recorded_pids(&ja);
    let want = format!("acura-ha:lt-lineage:{L1}");
    for (got, (ns, dev)) in aliases(&a_names).await.iter().zip(interfaces(&a_names)) {
        assert_eq!(got, &want, "{dev} in {ns:?}");
    }

    // B: the same cluster name, another cluster directory, another state.
    let b = lab("lt-lineage", "10.213.186.0/24", L2);
    let b_names = b.names();
    assert_eq!(b_names.bridge, a_names.bridge);
    assert_ne!(b_names.cluster_dir, a_names.cluster_dir);
    let before = machine(&a_names).await;
    let mut jb = MemJournal::default();
    let err = b
        .provider
        .provision(&b.spec, &mut jb)
        .await
        .expect_err("B's lab is A's");
    let msg = err.to_string();
    for part in [a_names.bridge.as_str(), L1, L2, "cluster.name"] {
        assert!(msg.contains(part), "{part} not in: {msg}");
    }
    assert!(
        matches!(err, acura_ha_api::provider::ProviderError::Unsupported(_)),
        "{err:?}"
    );
    assert!(jb.records.is_empty(), "{:#?}", jb.records);
    assert_eq!(machine(&a_names).await, before, "B's refused provision");
    assert!(
        !b.cluster_dir().exists(),
        "B's refused provision made its directory"
    );
    a_is_intact(&a, &ja, &a_pids, "after B's refused provision").await;

    // B's destroy (what `down` runs after the refused `up`), twice: A is not touched.
    for _ in 0..2 {
        b.provider
            .destroy(&b.spec, &mut jb)
            .await
            .expect("B's destroy");
        assert_eq!(machine(&a_names).await, before, "B's destroy");
        a_is_intact(&a, &ja, &a_pids, "after B's destroy").await;
    }
    assert_eq!(
        aliases(&a_names).await,
        vec![want; interfaces(&a_names).len()]
    );

    // A again: nothing to do.
    ja.history.clear();
    a.provision(&mut ja).await;
    assert_eq!(by_address(&ja), a_records, "A's provision again changed A");
    assert!(
        !ja.history.iter().any(|(_, s)| *s == Status::Creating),
        "A's provision again re-made something: {:?}",
        ja.history
    );
    assert_eq!(machine(&a_names).await, before, "A's provision again");

    // A's own destroy removes all of A; B's directory holds nothing either.
    a.provider
        .destroy(&a.spec, &mut ja)
        .await
        .expect("A's destroy");
    assert!(ja.records.is_empty(), "{:#?}", ja.records);
    assert_nothing_left(&a_names, &a_pids).await;
    assert!(files_under(&b_names.cluster_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_without_aliases_is_adopted_by_its_own_state_and_labelled() {
    let a = lab("lt-lin-old", "10.213.187.0/24", L1);
    let mut ja = MemJournal::default();
    a.provision(&mut ja).await;
    let names = a.names();
    let records = by_address(&ja);
    let pids = recorded_pids(&ja);

    // A lab made before lineages: no interface carries an alias.
    for (ns, dev) in interfaces(&names) {
        let mut args = Vec::new();
        if let Some(ns) = &ns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(["link", "set", "dev", dev.as_str(), "alias", ""]);
        let (rc, _, err) = sh("/usr/sbin/ip", &args).await;
        assert_eq!(rc, 0, "{err}");
    }
    let n = interfaces(&names).len();
    assert_eq!(aliases(&names).await, vec![String::new(); n]);

    // Its own state's `up` adopts it as it is (same daemons, same records) and labels it.
    ja.history.clear();
    a.provision(&mut ja).await;
    assert_eq!(by_address(&ja), records, "adoption changed the records");
    assert!(
        !ja.history.iter().any(|(_, s)| *s == Status::Creating),
        "adoption re-made something: {:?}",
        ja.history
    );
    a_is_intact(&a, &ja, &pids, "after the adoption").await;
    assert_eq!(
        aliases(&names).await,
        vec![format!("acura-ha:lt-lin-old:{L1}"); n]
    );

    // A teardown without a state (no lineage: `down` with the state lost) removes the lab as
    // before.
    let stateless = a.spec.with_lineage(None);
    a.provider
        .destroy(&stateless, &mut ja)
        .await
        .expect("destroy without a lineage");
    assert!(ja.records.is_empty(), "{:#?}", ja.records);
    assert_nothing_left(&names, &pids).await;
}
