//! Failures end to end on this machine: each must stop `up` with a clear message (its error code,
//! the host concerned, what to do), and leave a state that says exactly what completed, so a
//! re-run after fixing the cause completes.
//!
//! The hosts are a local-target lab (network namespaces with their own sshd, see
//! tests/common/lab.rs). The SSH failures and the sudo finding drive a `[static]` cluster file
//! over the lab's bare hosts (`up --only provision`), with its own state and pinned keys, and
//! break one host at a time: its sshd killed, its link down, a wrong pinned key, a login whose
//! sudo asks for a password. A dotted hostname and a failing playbook (the stand-in archive's
//! `~/.acura-standin/fail-<playbook>` marker) go through the lab's own `up`.
//!
//! Every test has its own lab subnet (10.213.90–96.0/24) and cluster names, so they run in
//! parallel with each other and with the other test binaries.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, ok, text};
use common::{example, require, tools_venv};
use serde_json::Value;

/// Every bootstrap step `up` records, in the state's (sorted) order.
const ALL_STEPS: &[&str] = &[
    "ha-acura",
    "ha_env_file",
    "k8s-master",
    "nginx",
    "post-checks",
    "preflight",
];

/// `acura-ha` with its standard input on /dev/null: no terminal, as in CI or a pipeline.
fn acura_ha() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acura-ha"));
    cmd.env_remove("ACURA_HA_CONFIG")
        .env_remove("ACURA_HA_STATE_DIR")
        .env_remove("ACURA_HA_BECOME_PASSWORD")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command the test needs, panicking with its output when it fails.
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(require(program)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that a command failed as an error (exit 1) with `code`; returns both streams.
fn failed(o: &Output, code: &str) -> (String, String) {
    let (out, err) = text(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1 with error[{code}]\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert!(
        err.contains(&format!("error[{code}]")),
        "expected error[{code}]\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    (out, err)
}

/// The steps `state show --output json` records (none when there is no state yet).
fn recorded_steps(state_show: &Output) -> BTreeSet<String> {
    let (json, _) = ok(state_show);
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["state"]["steps"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn steps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `completed_at` of every recorded step.
fn completed_at(state_show: &Output) -> Vec<(String, String)> {
    let (json, _) = ok(state_show);
    let v: Value = serde_json::from_str(&json).unwrap();
    v["state"]["steps"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, s)| (k.clone(), s["completed_at"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[preflight.minimums]` table of examples/local.toml, as written there (relaxed for
/// namespaces, including `os_releases`).
fn local_minimums() -> String {
    let text = std::fs::read_to_string(example("local.toml")).unwrap();
    let start = text
        .find("[preflight.minimums]")
        .expect("examples/local.toml has [preflight.minimums]");
    let rest = &text[start..];
    let end = rest
        .find("\n[local]")
        .expect("[local] follows the minimums");
    rest[..end].trim_end().to_string()
}

/// A `[static]` cluster file over the hosts of a lab (its three nodes, its NGINX host as
/// `static.lb`), logging in with the lab's key; its own state directory, both in the lab's
/// temporary directory. `down --yes` when dropped (ends Ansible's control masters, removes
/// the tool's files; nothing is deleted on the hosts).
struct StaticCluster {
    name: String,
    config: PathBuf,
    state_dir: PathBuf,
}

impl StaticCluster {
    fn new(lab: &Lab, ssh_user: &str) -> StaticCluster {
        let name = format!("{}-st", lab.name);
        assert!(name.len() <= 20, "cluster name {name:?} is too long");
        let net = format!("10.213.{}", lab.octet);
        let nodes: String = (1..=3)
            .map(|k| {
                let (n, a) = lab.node(k);
                format!("  {{ name = \"{n}\", address = \"{a}\" }},\n")
            })
            .collect();
        let (lb_name, lb_address) = lab.lb();
        let file = format!(
            r#"# [static] over the bare hosts of lab {lab_name}
[cluster]
name = "{name}"
product = "dr"

[nodes]
count = 3

[load_balancer]
kind = "nginx"

[access]
admin_cidrs = ["{net}.1/32"]
public_cidrs = ["{net}.0/24"]
ssh_user = "{ssh_user}"
ssh_private_key = "{key}"

[bootstrap]
archive = "{archive}"
logstash_host = ""

[preflight]
dns_name = "{first}"
ssh_wait_secs = 3

{minimums}

[static]
nodes = [
{nodes}]
lb = {{ name = "{lb_name}", address = "{lb_address}" }}
"#,
            lab_name = lab.name,
            key = lab.key().display(),
            archive = example("archive").display(),
            first = lab.node(1).0,
            minimums = local_minimums(),
        );
        let config = lab.dir.path().join("static.toml");
        std::fs::write(&config, file).unwrap();
        StaticCluster {
            name,
            config,
            state_dir: lab.dir.path().join("static-state"),
        }
    }

    /// Runs `acura-ha <args> -c <file> --state-dir <dir>`, without a terminal, with the tests'
    /// Ansible cache and no become password from the environment.
    fn run(&self, args: &[&str]) -> Output {
        acura_ha()
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("ACURA_HA_CACHE", tools_venv().parent().unwrap())
            .output()
            .unwrap()
    }

    fn known_hosts(&self) -> PathBuf {
        self.state_dir.join(&self.name).join("known_hosts")
    }

    /// Pins the hosts' keys as the lab knows them (what a user would do with keys from the
    /// cloud's console), so no first contact writes to the file.
    fn pin(&self, known_hosts: &str) {
        std::fs::create_dir_all(self.state_dir.join(&self.name)).unwrap();
        std::fs::write(self.known_hosts(), known_hosts).unwrap();
    }

    fn steps(&self) -> BTreeSet<String> {
        recorded_steps(&self.run(&["state", "show", "--output", "json"]))
    }
}

impl Drop for StaticCluster {
    fn drop(&mut self) {
        let out = self.run(&["down", "--yes"]);
        if !out.status.success() {
            eprintln!(
                "static cluster {} teardown: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A lab with bare hosts: namespaces, sshd, pinned keys; no bootstrap.
fn bare_lab(name: &str, octet: u8) -> Lab {
    let lab = Lab::new(name, octet, 3);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    lab
}

fn lab_known_hosts(lab: &Lab) -> String {
    std::fs::read_to_string(lab.cluster_dir().join("known_hosts")).unwrap()
}

fn host_dir(lab: &Lab, host: &str) -> PathBuf {
    lab.cluster_dir().join("hosts").join(host)
}

fn sshd_pid(lab: &Lab, host: &str) -> String {
    let f = host_dir(lab, host).join("run").join("sshd.pid");
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .to_string()
}

/// Waits until port 22 of `address` refuses connections (the killed sshd has closed it).
fn wait_refused(address: &str) {
    let addr = std::net::SocketAddr::new(address.parse().unwrap(), 22);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The SHA256 fingerprint of a host's key, as `ssh-keygen -l` prints it.
fn fingerprint(lab: &Lab, host: &str) -> String {
    let pub_key = host_dir(lab, host)
        .join("etc-ssh")
        .join("ssh_host_ed25519_key.pub");
    let out = sh(
        "ssh-keygen",
        &["-l", "-E", "sha256", "-f", pub_key.to_str().unwrap()],
    );
    out.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {out}"))
        .to_string()
}

/// The error message: from `error[…]` to the end (progress lines come before it).
fn error_block(err: &str) -> &str {
    let start = err
        .find("error[")
        .unwrap_or_else(|| panic!("no error[…] line\n{err}"));
    &err[start..]
}

/// The line of the error message that names `host`.
fn line_naming<'a>(err: &'a str, host: &str, address: &str) -> &'a str {
    error_block(err)
        .lines()
        .find(|l| l.contains(&format!("{host} ({address})")))
        .unwrap_or_else(|| panic!("no line names {host} ({address})\n{err}"))
}

/// After an SSH failure: nothing ran, so nothing is recorded; then the same `up` completes
/// once the cause is fixed.
fn assert_nothing_recorded_then_completes(st: &StaticCluster) {
    assert_eq!(
        st.steps(),
        BTreeSet::new(),
        "an SSH failure records no step"
    );
    let (out, _) = ok(&st.run(&["up", "--yes"]));
    assert!(out.contains("is up."), "{out}");
    assert_eq!(st.steps(), steps(ALL_STEPS));
}

#[test]
fn a_host_whose_sshd_is_dead_is_refused_by_name() {
    let lab = bare_lab("fail-refused", 90);
    let st = StaticCluster::new(&lab, "root");
    st.pin(&lab_known_hosts(&lab));
    let (host, address) = lab.node(2);
    sh("kill", &[&sshd_pid(&lab, &host)]);
    wait_refused(&address);

    let (_, err) = failed(&st.run(&["up", "--yes"]), "AH500");
    let line = line_naming(&err, &host, &address);
    assert!(line.contains("refused"), "{line}");
    assert!(err.contains("help: "), "says what to do: {err}");
    let block = error_block(&err);
    for k in [1, 3] {
        let other = lab.node(k).0;
        assert!(!block.contains(&other), "only {host} fails: {block}");
    }

    // Fixed: the lab makes the missing sshd again (same host key).
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    assert_nothing_recorded_then_completes(&st);
}

#[test]
fn a_host_that_does_not_answer_times_out_by_name() {
    let lab = bare_lab("fail-timeout", 91);
    let st = StaticCluster::new(&lab, "root");
    st.pin(&lab_known_hosts(&lab));
    let (host, address) = lab.node(2);
    let ns = lab.namespace(&host);
    sh("ip", &["-n", &ns, "link", "set", "eth0", "down"]);

    let (_, err) = failed(&st.run(&["up", "--yes"]), "AH500");
    let line = line_naming(&err, &host, &address);
    // Normally the connect deadline passes ("no answer within 10 s"); if the deploy side's
    // neighbour entry for the host has expired, the kernel may say "No route to host" first.
    assert!(
        line.contains("no answer within") || line.contains("No route to host"),
        "{line}"
    );
    assert!(err.contains("help: "), "says what to do: {err}");

    sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
    assert_nothing_recorded_then_completes(&st);
}

#[test]
fn a_changed_host_key_is_refused_and_the_pin_kept() {
    let lab = bare_lab("fail-hostkey", 92);
    let st = StaticCluster::new(&lab, "root");
    let (one, one_address) = lab.node(1);
    let (host, address) = lab.node(2);
    // Host 2 pinned with host 1's key: what a rebuilt (or impersonated) host looks like.
    let good = lab_known_hosts(&lab);
    let one_line = good
        .lines()
        .find(|l| l.starts_with(&format!("{one_address} ")))
        .unwrap_or_else(|| panic!("{one} is not pinned by the lab: {good}"));
    let wrong: String = good
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{address} ")) {
                one_line.replacen(&one_address, &address, 1)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(wrong, good);
    st.pin(&wrong);

    let (_, err) = failed(&st.run(&["up", "--yes"]), "AH500");
    let line = line_naming(&err, &host, &address);
    assert!(line.contains("HOST KEY CHANGED"), "{line}");
    let (pinned, offered) = (fingerprint(&lab, &one), fingerprint(&lab, &host));
    assert!(
        line.contains(&pinned),
        "names the pinned key {pinned}: {line}"
    );
    assert!(
        line.contains(&offered),
        "names the offered key {offered}: {line}"
    );
    assert!(
        line.contains(&st.known_hosts().display().to_string()),
        "names the known_hosts file: {line}"
    );
    assert_eq!(
        std::fs::read_to_string(st.known_hosts()).unwrap(),
        wrong,
        "the pinned keys are left as they were"
    );

    // Fixed: the right key pinned (as after checking the rebuilt host's key).
    st.pin(&good);
    assert_nothing_recorded_then_completes(&st);
}

#[test]
fn a_dotted_hostname_fails_preflight_and_records_nothing() {
    let lab = bare_lab("fail-fqdn", 93);
    let (host, address) = lab.node(2);
    let pid = sshd_pid(&lab, &host);
    // The host's sshd has its own UTS namespace: every session there sees this name.
    sh("nsenter", &["-t", &pid, "-u", "hostname", "x.example.com"]);

    let (out, err) = failed(&lab.run(&["up", "--yes"]), "AH501");
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("{host} ")))
        .unwrap_or_else(|| panic!("no preflight row for {host}\n{out}"));
    assert!(row.contains(&address) && row.contains("FAIL"), "{row}");
    for k in [1, 3] {
        let other = lab.node(k).0;
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{other} ")))
            .unwrap_or_else(|| panic!("no preflight row for {other}\n{out}"));
        assert!(!row.contains("FAIL"), "{row}");
    }
    let finding = out
        .lines()
        .find(|l| l.contains(&format!("error {host}: hostname:")))
        .unwrap_or_else(|| panic!("no hostname finding for {host}\n{out}"));
    assert!(
        finding.contains("x.example.com") && finding.contains("fully qualified"),
        "{finding}"
    );
    let error = err.lines().find(|l| l.contains("error[AH501]")).unwrap();
    assert!(error.contains(&host), "{error}");
    assert!(err.contains("help: "), "says what to do: {err}");
    assert!(
        !recorded_steps(&lab.run(&["state", "show", "--output", "json"])).contains("preflight"),
        "a failed preflight is not recorded"
    );

    sh("nsenter", &["-t", &pid, "-u", "hostname", &host]);
    let (out, _) = ok(&lab.run(&["up", "--yes"]));
    assert!(out.contains("is up."), "{out}");
    assert_eq!(
        recorded_steps(&lab.run(&["state", "show", "--output", "json"])),
        steps(ALL_STEPS)
    );
}

/// A login made for one test, removed with its home however the test ends.
struct TestUser(String);

impl TestUser {
    fn create() -> TestUser {
        let name = format!("ahsudo{}", std::process::id());
        // `*`, not useradd's locked `!`: sshd (UsePAM no) refuses key logins to locked accounts.
        sh(
            "useradd",
            &[
                "--create-home",
                "--shell",
                "/bin/sh",
                "--password",
                "*",
                &name,
            ],
        );
        TestUser(name)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let status = Command::new("userdel")
            .args(["--force", "--remove", &self.0])
            .stderr(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("userdel {} failed", self.0);
        }
    }
}

#[test]
fn sudo_that_asks_for_a_password_needs_dash_k() {
    require("sudo");
    let lab = bare_lab("fail-sudo", 94);
    let user = TestUser::create();
    // The lab's sshd reads one authorized_keys per host for every user (the local provider
    // writes it world-readable: it holds a public key only), so a non-root user logs in too.
    let names: Vec<String> = (1..=3).map(|k| lab.node(k).0).chain([lab.lb().0]).collect();
    let st = StaticCluster::new(&lab, &user.0);
    st.pin(&lab_known_hosts(&lab));

    let (out, err) = failed(&st.run(&["up", "--yes"]), "AH501");
    for h in &names {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{h} ")))
            .unwrap_or_else(|| panic!("no preflight row for {h}\n{out}\n{err}"));
        assert!(row.contains("password") && row.contains("FAIL"), "{row}");
        let finding = out
            .lines()
            .find(|l| l.contains(&format!("error {h}: sudo:")))
            .unwrap_or_else(|| panic!("no sudo finding for {h}\n{out}"));
        assert!(finding.contains("-K"), "{finding}");
    }
    assert!(err.contains("help: "), "says what to do: {err}");
    assert_eq!(
        st.steps(),
        BTreeSet::new(),
        "a failed preflight is not recorded"
    );

    // `preflight` says the same without changing anything; with -K the hosts pass.
    let (out, _) = failed_quietly(&st.run(&["preflight"]));
    assert!(
        out.contains(&format!("error {}: sudo:", names[0])) && out.contains("-K"),
        "{out}"
    );
    let (out, _) = ok(&st.run(&["preflight", "-K"]));
    assert!(!out.contains(": sudo:"), "{out}");
}

/// `preflight` exits 1 on findings without an `error[…]` line: the table is the report.
fn failed_quietly(o: &Output) -> (String, String) {
    let (out, err) = text(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "--- stdout\n{out}\n--- stderr\n{err}"
    );
    (out, err)
}

#[test]
fn a_failing_playbook_task_is_named_and_the_rerun_resumes() {
    let lab = Lab::new("fail-playbook", 95, 3);
    let (host, _) = lab.node(1);
    // The stand-in's failure switch, in node 1's private home (made before the host is).
    let marker = lab.home_file(&host, ".acura-standin/fail-k8s-master");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, "").unwrap();

    let (_, err) = failed(&lab.run(&["up", "--yes"]), "AH503");
    let task = err
        .lines()
        .find(|l| l.contains("task \"Fail on request\""))
        .unwrap_or_else(|| panic!("the failed task is not named\n{err}"));
    assert!(task.contains(&format!("on {host}:")), "{task}");
    assert!(task.contains("stand-in failure requested"), "{task}");
    for k in [2, 3] {
        assert!(
            !error_block(&err).contains(&format!("on {}:", lab.node(k).0)),
            "{err}"
        );
    }
    let log = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("log: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no log path\n{err}"));
    assert!(log.starts_with(lab.cluster_dir()), "{}", log.display());
    let log_text =
        std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        log_text.contains(&format!("fatal: [{host}]: FAILED!"))
            && log_text.contains("stand-in failure requested"),
        "the log holds the failure: {log_text}"
    );
    assert!(err.contains("help: "), "says what to do: {err}");
    // The lab's Ansible has Mitogen: the error says how to run without it (a failure of the
    // vendor's playbooks might be Mitogen's own).
    assert!(
        err.contains("ACURA_HA_ANSIBLE_STRATEGY=linear"),
        "names the opt-out: {err}"
    );

    let state = lab.run(&["state", "show", "--output", "json"]);
    assert_eq!(
        recorded_steps(&state),
        steps(&["preflight", "nginx", "ha_env_file"]),
        "what completed before the playbook, and nothing after"
    );
    let before = completed_at(&state);

    std::fs::remove_file(&marker).unwrap();
    let (out, err) = ok(&lab.run(&["up", "--yes"]));
    assert!(out.contains("is up."), "{out}");
    let state = lab.run(&["state", "show", "--output", "json"]);
    assert_eq!(recorded_steps(&state), steps(ALL_STEPS));
    // Only the playbooks and the post-checks ran again.
    for ran in [
        "[   run] k8s-master:",
        "[   run] ha-acura:",
        "] post-checks: ",
    ] {
        assert!(err.contains(ran), "{ran:?} did not run\n{err}");
    }
    for skipped in ["] preflight: ", "] nginx: "] {
        assert!(!err.contains(skipped), "{skipped:?} ran again\n{err}");
    }
    let after = completed_at(&state);
    for (step, at) in &before {
        assert!(
            after.contains(&(step.clone(), at.clone())),
            "{step} was recorded again: {before:?} -> {after:?}"
        );
    }
}

fn netns_list() -> String {
    sh("ip", &["netns", "list"])
}

#[test]
fn up_without_yes_and_without_a_terminal_refuses_and_creates_nothing() {
    let lab = Lab::new("fail-noyes", 96, 3);
    let out = acura_ha()
        .args(["up", "-c"])
        .arg(&lab.config)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        .output()
        .unwrap();
    let (_, err) = failed(&out, "AH004");
    assert!(err.contains("--yes"), "says what to do: {err}");
    let ns = netns_list();
    assert!(
        !ns.contains(&format!("ah-{}-", lab.name)),
        "namespaces made: {ns}"
    );
    let bridge = acura_ha_local::names::bridge_name(&lab.name);
    let link = Command::new(require("ip"))
        .args(["link", "show", "dev", &bridge])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(!link.status.success(), "bridge {bridge} made");
    let (json, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["state"].is_null()
            || v["state"]["resources"]
                .as_array()
                .is_some_and(|r| r.is_empty()),
        "resources recorded: {json}"
    );
    assert!(!lab.key().exists(), "a key was generated");
}
