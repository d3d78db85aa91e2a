//! Host keys from the cloud (issue 10, item 4), against real OpenSSH servers: the fingerprints a
//! server's console printed (cloud-init's block, read by the same parser the providers use) are
//! what a first contact pins; a host offering another key is refused before any login, naming
//! both fingerprints, without waiting; a host with no console keys is pinned on first use and
//! reported as such; an existing pin still wins.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use acura_ha::bootstrap::preflight::{Pool, Unreachable, connect_all_vouched};
use acura_ha::bootstrap::ssh::{Credentials, SshError, SshOptions};
use acura_ha::progress::Progress;
use acura_ha_api::console::host_key_fingerprints;
use acura_ha_api::model::{ConsoleHostKeys, Host};
use common::sshd::{Sshd, keygen};

fn opts(dir: &Path, key: &Path) -> SshOptions {
    SshOptions {
        known_hosts: dir.join("known_hosts"),
        credentials: Credentials {
            key_file: Some(key.to_path_buf()),
            agent: false,
            agent_socket: None,
        },
        connect_timeout: Duration::from_secs(3),
    }
}

/// `SHA256:…` of a public key file, as `ssh-keygen -l` (and cloud-init) print it.
fn fingerprint_of(pub_file: &Path) -> String {
    let out = Command::new(common::require("ssh-keygen"))
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -l failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// What a server's console holds after first boot: kernel noise and cloud-init's block.
fn console_log(host: &str, fingerprint: &str) -> String {
    format!(
        "[    2.801345] EXT4-fs (vda1): mounted filesystem\r\n\
         <14>Dec  7 07:40:12 cloud-init: #############################################################\r\n\
         <14>Dec  7 07:40:12 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n\
         <14>Dec  7 07:40:12 cloud-init: 256 {fingerprint} root@{host} (ED25519)\r\n\
         <14>Dec  7 07:40:12 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\r\n\
         <14>Dec  7 07:40:12 cloud-init: #############################################################\r\n\
         \u{1b}[0;32m  OK  \u{1b}[0m] Finished cloud-final.service\r\n"
    )
}

fn console(host: &str, log: &str) -> ConsoleHostKeys {
    let mut c = ConsoleHostKeys::default();
    c.fingerprints
        .insert(host.to_string(), host_key_fingerprints(log));
    c
}

/// Logs in as preflight does; the deadline is long on purpose: a refusal that were retried
/// would hold the test for ten minutes instead of failing at once.
async fn login(
    name: &str,
    address: &str,
    o: &SshOptions,
    c: &ConsoleHostKeys,
) -> Result<Pool, Unreachable> {
    let hosts = [(
        Host {
            name: name.into(),
            address: address.into(),
        },
        "root".to_string(),
    )];
    connect_all_vouched(
        &hosts,
        o,
        c,
        Duration::from_secs(600),
        &mut Progress::new("ssh").quiet(true),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_fingerprint_that_matches_is_pinned_without_a_first_use_note() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let sshd = Sshd::start("127.0.21.1", &[&key.with_extension("pub")]);
    let o = opts(keys.path(), &key);
    let fp = fingerprint_of(&sshd.dir.path().join("host_ed25519.pub"));
    let c = console("node-1", &console_log("node-1", &fp));
    assert_eq!(c.fingerprints["node-1"], vec![fp.clone()]);

    let pool = login("node-1", "127.0.21.1", &o, &c).await.expect("login");
    assert!(
        pool.trusted_on_first_use().is_empty(),
        "{:?}",
        pool.trusted_on_first_use()
    );
    let pinned = std::fs::read_to_string(&o.known_hosts).unwrap();
    assert!(
        pinned.trim_start().starts_with("127.0.21.1 ssh-ed25519 "),
        "{pinned}"
    );
    let out = pool
        .get("node-1")
        .unwrap()
        .run("echo in", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "in\n");

    // The pin now wins: a console that later says otherwise does not unpin a key that matches.
    let other = tempfile::tempdir().unwrap();
    keygen(&other.path().join("k"), "ed25519", "");
    let stale = console(
        "node-1",
        &console_log("node-1", &fingerprint_of(&other.path().join("k.pub"))),
    );
    let pool = login("node-1", "127.0.21.1", &o, &stale)
        .await
        .expect("the pinned key still logs in");
    assert!(pool.trusted_on_first_use().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_fingerprint_that_does_not_match_is_refused_before_login_naming_both() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let sshd = Sshd::start("127.0.21.2", &[&key.with_extension("pub")]);
    let o = opts(keys.path(), &key);
    let offered = fingerprint_of(&sshd.dir.path().join("host_ed25519.pub"));
    // The console printed another key: as if the address led to a different machine.
    keygen(&keys.path().join("impostor"), "ed25519", "");
    let printed = fingerprint_of(&keys.path().join("impostor.pub"));
    let c = console("node-2", &console_log("node-2", &printed));

    let mut err = login("node-2", "127.0.21.2", &o, &c)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.failures.len(), 1);
    let e = err.failures.remove(0);
    assert!(matches!(e, SshError::HostKeyNotVouched { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("node-2 (127.0.21.2): HOST KEY NOT THE ONE THE CLOUD REPORTED"),
        "{text}"
    );
    assert!(text.contains(&offered) && text.contains(&printed), "{text}");
    assert!(text.contains("intercepting"), "{text}");
    // Nothing was pinned: the next run checks against the console again.
    assert!(!o.known_hosts.exists() || std::fs::read_to_string(&o.known_hosts).unwrap().is_empty());
    // And the error is AH500 through the bootstrap.
    let b = acura_ha::bootstrap::BootstrapError::Unreachable(Unreachable { failures: vec![e] });
    assert_eq!(b.code(), "AH500");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_console_keys_the_host_is_trusted_on_first_use_and_said_so() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let _sshd = Sshd::start("127.0.21.3", &[&key.with_extension("pub")]);
    let o = opts(keys.path(), &key);

    let pool = login("node-3", "127.0.21.3", &o, &ConsoleHostKeys::default())
        .await
        .expect("login");
    assert_eq!(pool.trusted_on_first_use(), ["node-3".to_string()]);
    // Pinned now: the next login is no first use.
    let pool = login("node-3", "127.0.21.3", &o, &ConsoleHostKeys::default())
        .await
        .expect("login");
    assert!(pool.trusted_on_first_use().is_empty());
}

/// `up` on an OpenStack cluster file (the fake cloud, whose servers get the addresses of bare
/// local-target hosts): the consoles vouch for the hosts' real keys except the NGINX VM's, which
/// is refused (AH500, both fingerprints) before anything runs there; with its real key on the
/// console the next `up` logs in everywhere and no host is trusted on first use.
#[test]
fn up_pins_the_keys_the_fake_clouds_consoles_print_and_refuses_another() {
    use common::lab::{Lab, ok, text};
    use fake_openstack::{Config, FakeCloud, NetworkSpec};
    use std::collections::BTreeMap;

    let lab = Lab::new("e2e-ck", 170, 3);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let hosts: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).chain([lab.lb()]).collect();
    // The lab pinned its hosts' keys when it made them: their fingerprints, by address.
    let listed = Command::new(common::require("ssh-keygen"))
        .arg("-lf")
        .arg(lab.cluster_dir().join("known_hosts"))
        .output()
        .unwrap();
    assert!(listed.status.success());
    let by_address: BTreeMap<String, String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), f[1].to_string())
        })
        .collect();
    let fp = |address: &str| by_address[address].clone();

    let mut cfg = Config::default();
    let net = cfg
        .networks
        .iter_mut()
        .find(|n| n.name == "acura-net")
        .expect("acura-net");
    *net = NetworkSpec {
        name: "acura-net".into(),
        subnet_name: "acura-subnet".into(),
        cidr: "10.213.170.0/24".into(),
        external: false,
        address_pool: hosts.iter().map(|(_, a)| a.clone()).collect(),
        addresses_by_server: hosts.iter().cloned().collect(),
    };
    let fake = FakeCloud::start(cfg);
    let (lb_name, lb_address) = lab.lb();
    for (name, address) in &hosts[..3] {
        fake.set_console_log(name, Some(&console_log(name, &fp(address))));
    }
    // The NGINX VM's console printed another key (as if its address led elsewhere).
    let other = tempfile::tempdir().unwrap();
    keygen(&other.path().join("k"), "ed25519", "");
    let printed = fingerprint_of(&other.path().join("k.pub"));
    fake.set_console_log(&lb_name, Some(&console_log(&lb_name, &printed)));

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
    let key = lab.key();
    let public = dir.path().join("id_ed25519.pub");
    let derived = Command::new(common::require("ssh-keygen"))
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(derived.status.success());
    std::fs::write(&public, derived.stdout).unwrap();
    let lab_text = std::fs::read_to_string(&lab.config).unwrap();
    let start = lab_text.find("[preflight]").expect("[preflight]");
    let rest = &lab_text[start..];
    let preflight = &rest[..rest.find("\n[local]").unwrap_or(rest.len())];
    let config = dir.path().join("openstack.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nname = \"e2e-ck\"\nproduct = \"dr\"\n\n\
             [nodes]\ncount = 3\nhostname_prefix = \"e2e-ck\"\nvolume_size_gb = 200\nos_version = \"20.04\"\n\n\
             [load_balancer]\nkind = \"nginx\"\n\n\
             [access]\nadmin_cidrs = [\"10.213.170.1/32\"]\npublic_cidrs = [\"10.213.170.0/24\"]\n\
             ssh_user = \"root\"\nssh_private_key = \"{key}\"\n\n\
             [bootstrap]\narchive = \"{archive}\"\nlogstash_host = \"\"\ncopy_patch = true\ncopy_ca = true\n\n\
             {preflight}\n\n\
             [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
             network = \"acura-net\"\npublic_key_file = \"{public}\"\nlb_flavor = \"m1.small\"\n",
            key = key.display(),
            archive = common::example("archive").display(),
            public = public.display(),
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let up = || {
        common::acura_ha()
            .args(["up", "--yes", "-c"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    };

    let refused = up();
    let (out, err) = text(&refused);
    assert!(!refused.status.success(), "up passed\n{out}\n{err}");
    assert!(err.contains("AH500"), "{err}");
    assert!(
        err.contains(&format!(
            "{lb_name} ({lb_address}): HOST KEY NOT THE ONE THE CLOUD REPORTED"
        )),
        "{err}"
    );
    assert!(
        err.contains(&printed) && err.contains(&fp(&lb_address)),
        "{err}"
    );
    assert!(!err.contains("trusted on first use"), "{err}");
    let pinned = state.join("e2e-ck").join("known_hosts");
    let pinned_text = std::fs::read_to_string(&pinned).unwrap_or_default();
    assert!(!pinned_text.contains(&lb_address), "{pinned_text}");

    // With the NGINX VM's real key on its console, up logs in everywhere; nothing is first use.
    fake.set_console_log(&lb_name, Some(&console_log(&lb_name, &fp(&lb_address))));
    let again = up();
    let (out, err) = text(&again);
    assert!(again.status.success(), "up failed\n{out}\n{err}");
    assert!(!err.contains("trusted on first use"), "{err}");
    let pinned_text = std::fs::read_to_string(&pinned).unwrap();
    for (_, address) in &hosts {
        assert!(
            pinned_text.contains(address.as_str()),
            "{address}: {pinned_text}"
        );
    }
    ok(&common::acura_ha()
        .args(["down", "--yes", "-c"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .output()
        .unwrap());
}
