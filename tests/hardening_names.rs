//! Hardening (#11.1, #11.3): node names and addresses are what a hostname and an address may be,
//! wherever they come from — the cluster file, `node add --name`, and the state file's day-2
//! node set. `cargo test -p acura-ha --test hardening_names`.

mod common;

use std::path::PathBuf;

use acura_ha::config::{load, parse};
use acura_ha::state::{NodeEntry, State, StateStore};
use common::{acura_ha, example};

/// The static example in a temporary folder with a saved state (a cluster `up` made; nothing
/// really exists): (folder, cluster file, state folder, store, state).
struct Applied {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    st: PathBuf,
    store: StateStore,
    state: State,
}

fn applied() -> Applied {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("static.toml");
    std::fs::copy(example("static.toml"), &cfg).unwrap();
    let st = dir.path().join("state");
    let loaded = load(&cfg).unwrap();
    let store = StateStore::for_config(&loaded, Some(&st));
    let mut state = State::new(&loaded.spec.cluster.name, "static");
    store.save(&mut state).unwrap();
    Applied {
        _dir: dir,
        cfg,
        st,
        store,
        state,
    }
}

/// `node add --name X` with a name that is no hostname label is refused before anything is
/// recorded or created, and the message names the value. (`/` made the local target's host
/// directory `/`.)
#[test]
fn node_add_refuses_a_name_that_is_not_a_hostname() {
    let Applied { cfg, st, store, .. } = &applied();
    let long = "a".repeat(64);
    for bad in [
        "/",
        "../x",
        "x/y",
        "Acura-4",
        "-x",
        "x-",
        "a_b",
        "a b",
        "x;reboot",
        "é",
        long.as_str(),
    ] {
        let out = acura_ha()
            .args([
                "node",
                "add",
                "--address",
                "192.0.2.44",
                &format!("--name={bad}"),
                "--yes",
                "-c",
            ])
            .arg(cfg)
            .arg("--state-dir")
            .arg(st)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--name {bad:?}: {err}");
        assert!(err.contains("AH003"), "--name {bad:?}: {err}");
        assert!(
            err.contains(&format!("{bad:?}")),
            "--name {bad:?}: the message names the value: {err}"
        );
        // Nothing was recorded for it.
        let state = store.load().unwrap().unwrap();
        assert!(state.day2.pending.is_none(), "--name {bad:?}: {state:?}");
        assert!(state.day2.nodes.is_none(), "--name {bad:?}: {state:?}");
    }
}

/// A state whose day-2 node set holds a name that is no hostname is corrupt: every command that
/// reads it refuses, naming the bad name, instead of handing it to a provider.
#[test]
fn a_state_with_a_bad_node_name_is_refused_as_corrupt() {
    for bad in ["/", "../../etc", "Upper", "a.b", "x y"] {
        let Applied {
            cfg,
            st,
            store,
            mut state,
            _dir: _keep,
        } = applied();
        state.day2.nodes = Some(vec![
            NodeEntry {
                name: "acura-1".into(),
                address: None,
            },
            NodeEntry {
                name: bad.into(),
                address: Some("192.0.2.44".parse().unwrap()),
            },
        ]);
        store.save(&mut state).unwrap();
        let e = store.load().expect_err(bad);
        assert!(
            matches!(e, acura_ha::state::StateError::Corrupt { .. }),
            "{bad:?}: {e:?}"
        );
        assert!(e.to_string().contains(&format!("{bad:?}")), "{bad:?}: {e}");
        let out = acura_ha()
            .args(["plan", "-c"])
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&st)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {err}");
        assert!(
            err.contains("AH200") && err.contains(&format!("{bad:?}")),
            "{bad:?}: {err}"
        );
    }
    // The pending node's name is checked the same way.
    let Applied {
        store,
        mut state,
        _dir: _keep,
        ..
    } = applied();
    state.day2.pending = Some(acura_ha::state::Pending {
        operation: "add".into(),
        old: None,
        new: "/".into(),
    });
    store.save(&mut state).unwrap();
    let e = store.load().expect_err("a pending node named /");
    assert!(e.to_string().contains("\"/\""), "{e}");
}

/// The file's addresses are an IP address or a DNS name, with the problem located at the key.
#[test]
fn addresses_in_the_file_are_ip_addresses_or_dns_names() {
    let base = std::fs::read_to_string(example("static.toml")).unwrap();
    let external = base
        .replace(
            "kind = \"nginx\"                      # the tool installs and configures NGINX on static.lb",
            "kind = \"external\"\naddress = \"203.0.113.5\"",
        )
        .replace(
            "lb = { name = \"acura-lb\", address = \"192.0.2.10\" }",
            "",
        );
    parse("ok.toml", &external).expect("the external variant is valid");
    for good in [
        "203.0.113.5",
        "2001:db8::5",
        "lb.example.com",
        "LB-1.Example.COM",
        "acura",
    ] {
        let src = external.replace("203.0.113.5", good);
        parse("ok.toml", &src).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    for bad in [
        "$(reboot)",
        "a;b",
        "lb..example.com",
        "-lb.example.com",
        "lb-.example.com",
        "lb_1.example.com",
        "999.1.1.1",
        "1.2.3",
        "http://lb.example.com",
        "lb.example.com:443",
        "{{x}}",
        ".",
    ] {
        let src = external.replace("203.0.113.5", bad);
        assert_refused_at(&src, bad, "load_balancer.address", "address = ");
    }
    let bootstrap = "archive = \"hystax-ha-archive.tar.gz\"";
    for good in ["", "logs.example.com", "192.0.2.7", "2001:db8::7"] {
        let src = base.replace(
            bootstrap,
            &format!("{bootstrap}\nlogstash_host = \"{good}\""),
        );
        parse("ok.toml", &src).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    for bad in [
        "$(id)",
        "a'b",
        "logs..example.com",
        "{{ lookup('pipe','id') }}",
        "x/y",
    ] {
        let src = base.replace(bootstrap, &format!("{bootstrap}\nlogstash_host = {bad:?}"));
        assert_refused_at(&src, bad, "bootstrap.logstash_host", "logstash_host = ");
    }
}

/// `src` does not load; the error names `key` and points at the line starting with `line_start`.
fn assert_refused_at(src: &str, bad: &str, key: &str, line_start: &str) {
    let e = parse("bad.toml", src).expect_err(bad);
    let shown = e.to_string();
    assert!(shown.contains(key), "{bad:?}: the key is named: {shown}");
    let line = src.lines().position(|l| l.starts_with(line_start)).unwrap() + 1;
    assert!(
        e.problems.iter().any(|p| p.line == line),
        "{bad:?}: located at line {line}: {e:?}"
    );
}
