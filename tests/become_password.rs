//! The guide's `-K`: a login user whose sudo asks for a password (#11.5). On the local target
//! the test makes such a user on this machine (the lab hosts share its /etc/passwd, /etc/shadow
//! and /etc/sudoers.d; each gets a private /home), then drives `up` and a day-2 `update` with
//! ACURA_HA_BECOME_PASSWORD: the NGINX host (config upload, `nginx -t`, start/reload), the
//! listener proof (responders as root), the post-checks and the day-2 `kubectl` calls all go
//! through `sudo -S` with the password on standard input. A wrong password stops `up` at the
//! preflight and `update` at its first node, naming the host and sudo's own words. The password
//! is in no output, log or state file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::lab::{Lab, ok, text};
use common::walk;
use serde_json::Value;

const EXTRA: &str = "overlay/big-heat-stack-timeout.yaml";

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(common::require(program))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// A system user whose sudo asks for its password; removed (user and sudoers rule) on drop.
struct SudoUser {
    name: String,
    sudoers: PathBuf,
}

impl SudoUser {
    fn new(password: &str) -> SudoUser {
        common::require_root("the test makes a user and a sudoers rule");
        for tool in ["useradd", "userdel", "chpasswd", "visudo", "sudo"] {
            common::require(tool);
        }
        let name = format!("ahb{}", std::process::id() % 1_000_000);
        let home = format!("/home/{name}");
        // -M: the machine's /home is not touched; each lab host gets the home privately.
        let out = run(
            "useradd",
            &["-M", "-d", &home, "-s", "/bin/sh", &name],
            None,
        );
        assert!(out.status.success(), "useradd: {}", text(&out).1);
        let user = SudoUser {
            sudoers: PathBuf::from(format!("/etc/sudoers.d/{name}")),
            name,
        };
        // The password travels on chpasswd's standard input, never in an argument.
        let out = run(
            "chpasswd",
            &[],
            Some(&format!("{}:{password}\n", user.name)),
        );
        assert!(out.status.success(), "chpasswd: {}", text(&out).1);
        // Every command needs the password. HOME is kept because the stand-in kubectl keeps
        // its cluster in the login user's home (a real node's root kubeconfig is /root's).
        let rule = format!(
            "Defaults:{n} env_keep += \"HOME\"\n{n} ALL=(ALL:ALL) ALL\n",
            n = user.name
        );
        let staged = std::env::temp_dir().join(format!("sudoers-{}", user.name));
        std::fs::write(&staged, rule).expect("write the sudoers rule");
        let out = run("visudo", &["-cf", staged.to_str().expect("utf-8")], None);
        assert!(out.status.success(), "visudo: {}", text(&out).0);
        std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o440))
            .expect("chmod");
        std::fs::copy(&staged, &user.sudoers).expect("install the sudoers rule");
        let _ = std::fs::remove_file(&staged);
        user
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let out = run("userdel", &[&self.name], None);
        if !out.status.success() {
            eprintln!("userdel {}: {}", self.name, text(&out).1);
        }
    }
}

fn assert_not_leaked(secrets: &[&str], outputs: &[&std::process::Output], state_dir: &Path) {
    for o in outputs {
        let (out, err) = text(o);
        for s in secrets {
            assert!(
                !out.contains(s) && !err.contains(s),
                "the become password was printed"
            );
        }
    }
    let files = walk(state_dir);
    // The state file, the playbook logs, the ha_env_file, Ansible's files: all of them.
    assert!(
        files
            .iter()
            .any(|f| f.components().any(|c| c.as_os_str() == "logs")),
        "playbook logs are under {}",
        state_dir.display()
    );
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".state.json")),
        "the state file is under {}",
        state_dir.display()
    );
    for entry in files {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(
                !body.contains(s),
                "the become password is in {}",
                entry.display()
            );
        }
    }
}

#[test]
fn up_and_update_as_a_user_whose_sudo_needs_a_password() {
    // Quotes and a space: the password is data on standard input, never shell text.
    let password = format!("pw '{}\" x", random_hex(10));
    let wrong = format!("wrong-{}", random_hex(10));
    let user = SudoUser::new(&password);
    // Declared after the user: the lab (and every process the user ran in it) goes first.
    let lab = Lab::new("become-pw", 160, 3);
    let text_cfg = std::fs::read_to_string(&lab.config).expect("cluster file");
    let text_cfg = text_cfg
        .replace(
            "ssh_user = \"root\"",
            &format!("ssh_user = \"{}\"", user.name),
        )
        // Bounded, in case a sudo failure were ever polled again instead of reported.
        .replace("[preflight]\n", "[preflight]\nready_wait_secs = 300\n");
    assert!(text_cfg.contains(&user.name), "{text_cfg}");
    std::fs::write(&lab.config, text_cfg).expect("write the cluster file");
    let mut outputs = Vec::new();

    ok(&lab.run(&["up", "--yes", "--only", "provision"]));

    // A wrong password: the preflight names every host and what sudo said; nothing is built.
    let bad = lab.run_env(&["up", "--yes"], &[("ACURA_HA_BECOME_PASSWORD", &wrong)]);
    let (_, err) = text(&bad);
    assert!(
        !bad.status.success(),
        "up with a wrong password succeeded\n{err}"
    );
    let all_out = format!("{}{err}", text(&bad).0);
    assert!(
        all_out.contains("sudo refused the become password")
            && all_out.contains("incorrect password"),
        "{all_out}"
    );
    let (node1, _) = lab.node(1);
    assert!(all_out.contains(&node1), "{all_out}");
    outputs.push(bad);

    // Without any password: told to pass -K, not a 30-minute wait.
    let none = lab.run(&["up", "--yes"]);
    let (nout, nerr) = text(&none);
    assert!(!none.status.success());
    assert!(format!("{nout}{nerr}").contains("-K"), "{nout}\n{nerr}");

    // The right password: the whole of `up`.
    let good = lab.run_env(&["up", "--yes"], &[("ACURA_HA_BECOME_PASSWORD", &password)]);
    let (out, err) = ok(&good);
    let (_, lb_address) = lab.lb();
    assert!(out.contains(&format!("https://{lb_address}:4443")), "{out}");
    // NGINX was configured by sudo and proven: every listener reached every node.
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    for listener in ["tcp/80", "tcp/443", "tcp/6443", "udp/12201", "tcp/15000"] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!(" {listener} reaches ")))
            .unwrap_or_else(|| panic!("no proof for {listener}\n{err}"));
        for (name, _) in &nodes {
            assert!(line.contains(name.as_str()), "{listener}: {line}");
        }
    }
    let (lb_name, _) = lab.lb();
    let conf = lab
        .cluster_dir()
        .join("hosts")
        .join(&lb_name)
        .join("etc-nginx/nginx.conf");
    let conf = std::fs::read_to_string(&conf).expect("the LB host's nginx.conf");
    for (_, address) in &nodes {
        assert!(conf.contains(address.as_str()), "{conf}");
    }
    // The playbooks ran as the user, each node in its own home.
    for (name, _) in &nodes {
        let rec = lab
            .cluster_dir()
            .join("hosts")
            .join(name)
            .join("home")
            .join(&user.name)
            .join(".acura-standin/k8s-master.json");
        let rec: Value =
            serde_json::from_str(&std::fs::read_to_string(&rec).expect("k8s-master record"))
                .expect("json");
        assert_eq!(rec["ansible_ssh_user"], user.name.as_str());
        assert_eq!(rec["inventory_hostname"], name.as_str());
    }
    // Every step, the post-checks included, is recorded.
    let (state_json, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    let state: Value = serde_json::from_str(&state_json).expect("state");
    for step in [
        "preflight",
        "nginx",
        "k8s-master",
        "ha-acura",
        "post-checks",
    ] {
        assert!(
            state["state"]["steps"].get(step).is_some(),
            "{step} not recorded: {state_json}"
        );
    }
    outputs.push(good);

    // Day 2: `update` reads and writes etcd-0 through `sudo kubectl` on a live node.
    let upd = lab.run_env(
        &["update", "--add-overlay", EXTRA, "--yes"],
        &[("ACURA_HA_BECOME_PASSWORD", &password)],
    );
    let (uout, uerr) = ok(&upd);
    let account = format!("{uout}{uerr}");
    assert!(account.contains(&format!("+ {EXTRA}")), "{account}");
    let rec = lab
        .cluster_dir()
        .join("hosts")
        .join(&node1)
        .join("home")
        .join(&user.name)
        .join(".acura-standin/ha-acura.json");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&rec).expect("ha-acura record"))
        .expect("json");
    assert_eq!(rec["update_cluster"], "true", "{rec}");
    assert!(
        rec["overlay_list"]
            .as_array()
            .expect("list")
            .iter()
            .any(|o| o == EXTRA),
        "{rec}"
    );
    outputs.push(upd);

    // A wrong password on day 2: no live node, each named with sudo's words.
    let bad = lab.run_env(
        &["update", "--remove-overlay", EXTRA, "--yes"],
        &[("ACURA_HA_BECOME_PASSWORD", &wrong)],
    );
    let (bout, berr) = text(&bad);
    assert!(!bad.status.success(), "{bout}\n{berr}");
    assert!(
        berr.contains("incorrect password") && berr.contains(&node1),
        "{berr}"
    );
    outputs.push(bad);

    let refs: Vec<&std::process::Output> = outputs.iter().collect();
    assert_not_leaked(&[&password, &wrong], &refs, &lab.state_dir);
}
