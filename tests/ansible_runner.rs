//! The playbook runner against the real `ansible-playbook` (ansible-core from the tools venv)
//! with tiny local playbooks, for issue 11's findings: values the tool did not write itself
//! arrive literally, never templated (#2); `ACURA_HA_BECOME_PASSWORD` reaches no child (#4);
//! secrets are redacted from the log and the failure (#6) and never written to the disk (#7).

mod common;

use acura_ha::bootstrap::ansible::{
    SecretVars, Strategy, Workspace, ansible_env, pick_strategy, run_playbook,
};
use acura_ha::bootstrap::playbook;
use acura_ha::files::ClusterDir;
use common::{tools_venv, walk};

/// Every test of this binary runs with the variable `-K` users may set instead of answering
/// the prompt: no child the runner starts may inherit it.
const ENV_SECRET: &str = "env-secret-9f3c1b7e";

fn set_become_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: every test calls this first, and `Once` makes the others wait, so no other
    // thread of this binary reads the environment while it is written.
    ONCE.call_once(|| unsafe { std::env::set_var("ACURA_HA_BECOME_PASSWORD", ENV_SECRET) });
}

/// The static example's cluster file (user `ubuntu`).
fn spec() -> acura_ha_api::spec::ClusterSpec {
    let text = std::fs::read_to_string(common::example("static.toml")).unwrap();
    acura_ha::config::parse("static.toml", &text).unwrap()
}

/// A playbook that writes the variables it received, as JSON, next to itself.
const ECHO: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the variables received
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/../received.json"
        content: "{{ {'lb_address': lb_address | default(''), 'logstash_host': logstash_host | default('unset'), 'ssh_user': ansible_ssh_user, 'overlays': overlay_list | default([]), 'password': ansible_become_password | default(''), 'env': lookup('env', 'ACURA_HA_BECOME_PASSWORD')} | to_json }}"
"#;

/// A workspace whose "archive" holds the echo playbook under both of the guide's names, run
/// with the tools venv's Ansible against localhost.
fn workspace() -> (tempfile::TempDir, Workspace) {
    workspace_with(ECHO)
}

fn workspace_with(playbook: &str) -> (tempfile::TempDir, Workspace) {
    set_become_env();
    let venv = tools_venv();
    assert!(
        venv.join("bin/ansible-playbook").is_file(),
        "ansible-playbook is not installed: run `{}`",
        common::SETUP
    );
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    std::fs::create_dir_all(archive.join("ansible")).unwrap();
    for p in [
        acura_ha_api::tables::K8S_MASTER_PLAYBOOK,
        acura_ha_api::tables::HA_ACURA_PLAYBOOK,
    ] {
        std::fs::write(archive.join(p), playbook).unwrap();
    }
    let dir = ClusterDir::new(tmp.path().join("cluster"));
    dir.create().unwrap();
    std::fs::write(
        dir.ha_env_file(),
        "localhost ansible_connection=local ansible_python_interpreter=python3\n",
    )
    .unwrap();
    (tmp, Workspace { archive, venv, dir })
}

fn received(ws: &Workspace) -> serde_json::Value {
    let text = std::fs::read_to_string(ws.archive.join("received.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn overlays_and_secrets_arrive_literally() {
    let (_tmp, ws) = workspace();
    let spec = spec();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let overlays = vec![
        "overlay/ha.yaml".to_string(),
        "{{ 7*6 }}".to_string(),
        "{{ lookup('pipe', 'touch /tmp/acura-ha-was-templated') }}".to_string(),
    ];
    let run = playbook::ha_acura(&spec, &overlays, false, &inventory);
    let secrets = SecretVars(vec![(
        "ansible_become_password".into(),
        "p{{ 7*6 }}w'\"\\ {% raw %}".into(),
    )]);
    run_playbook(&ws, &run, &secrets, "untemplated", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = received(&ws);
    assert_eq!(got["overlays"], serde_json::json!(overlays), "{got}");
    assert_eq!(got["password"], "p{{ 7*6 }}w'\"\\ {% raw %}", "{got}");
    assert!(!std::path::Path::new("/tmp/acura-ha-was-templated").exists());
}

#[tokio::test]
async fn command_line_data_is_not_templated() {
    let (_tmp, ws) = workspace();
    let spec = spec();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let run = playbook::k8s_master(&spec, "lb{{ 7*6 }}.example", &inventory);
    run_playbook(&ws, &run, &SecretVars::default(), "untemplated-lb", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = received(&ws);
    assert_eq!(got["lb_address"], "lb{{ 7*6 }}.example", "{got}");
    assert_eq!(got["ssh_user"], "ubuntu", "{got}");
    // An empty value stays an empty string (ansible-core 2.19 reads `!unsafe ""` as null).
    assert_eq!(got["logstash_host"], "", "{got}");
    // #4: ansible-playbook (and so its ssh and every lookup) runs without the variable.
    assert_eq!(got["env"], "", "{got}");
}

const SECRET: &str = "tok-{{ 1 }}\"\\é-8c2d41a0";

/// #7: while the playbook runs, no regular file under the cluster's directory holds a secret,
/// and a secrets file a killed run left behind is gone.
#[tokio::test]
async fn secrets_never_touch_the_disk() {
    let (_tmp, ws) = workspace_with(&format!(
        "{ECHO}    - name: Take a while\n      ansible.builtin.command: sleep 3\n"
    ));
    let stale = ws.dir.root().join(".secret-vars-4242.json");
    std::fs::write(&stale, r#"{"master_token": "stale-token-of-a-killed-run"}"#).unwrap();
    let spec = spec();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let run = playbook::ha_acura(&spec, &["overlay/ha.yaml".into()], false, &inventory);
    let secrets = SecretVars(vec![
        ("master_token".into(), SECRET.into()),
        ("ansible_become_password".into(), SECRET.into()),
    ]);
    let root = ws.dir.root().to_path_buf();
    let runner = tokio::spawn(async move {
        run_playbook(&ws, &run, &secrets, "off-disk", true).await?;
        Ok::<_, acura_ha::bootstrap::ansible::AnsibleError>(ws)
    });
    let mut looks = 0;
    while !runner.is_finished() {
        looks += 1;
        for f in walk(&root) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(SECRET),
                "{} holds a secret during the run",
                f.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ws = runner.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(looks > 10, "the run was too short to look ({looks})");
    assert_eq!(received(&ws)["password"], SECRET);
    assert!(
        !stale.exists(),
        "a stale secrets file survived the next run"
    );
    for f in walk(&root) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned();
        assert!(!text.contains(SECRET), "{} holds a secret", f.display());
    }
}

/// #6: a failing task that prints a secret (raw in its name, JSON-escaped in its message)
/// leaves it in neither the log nor the error the terminal shows.
#[tokio::test]
async fn a_failing_task_does_not_leak_the_secret() {
    let (_tmp, ws) = workspace_with(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: "Join with {{ master_token }}"
      ansible.builtin.fail:
        msg: "the token {{ master_token }} was refused"
"#,
    );
    let spec = spec();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let run = playbook::k8s_join(&spec, "203.0.113.5", &inventory);
    let secrets = SecretVars(vec![("master_token".into(), SECRET.into())]);
    let err = run_playbook(&ws, &run, &secrets, "leak", true)
        .await
        .expect_err("the task fails");
    let shown = format!("{err}\n{err:?}");
    assert!(shown.contains("refused"), "{shown}");
    let escaped = serde_json::to_string(SECRET).unwrap();
    let escaped = escaped.trim_matches('"');
    let ascii = "tok-{{ 1 }}\\\"\\\\\\u00e9-8c2d41a0";
    for form in [SECRET, escaped, ascii, "8c2d41a0"] {
        assert!(!shown.contains(form), "the error shows {form:?}: {shown}");
    }
    let logs: Vec<_> = walk(&ws.dir.logs());
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("was refused"), "{log}");
    assert!(log.contains("Join with"), "{log}");
    for form in [SECRET, escaped, ascii, "8c2d41a0"] {
        assert!(!log.contains(form), "the log shows {form:?}:\n{log}");
    }
}

/// #4: the Python that builds the venv and the venv's pip (which runs the archive's build
/// code) get no `ACURA_HA_BECOME_PASSWORD`.
#[tokio::test]
async fn venv_tools_get_no_become_password() {
    set_become_env();
    let tmp = tempfile::tempdir().unwrap();
    let seen = tmp.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    let record = |name: &str| {
        format!(
            "printf '%s' \"${{ACURA_HA_BECOME_PASSWORD-unset}}\" > {}/{name}\n",
            seen.display()
        )
    };
    // A stand-in python: `-m venv DIR` makes DIR/bin/pip and DIR/bin/ansible-playbook.
    let python = tmp.path().join("python");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\n{}mkdir -p \"$3/bin\"\nprintf '#!/bin/sh\\n{}' > \"$3/bin/pip\"\n\
             touch \"$3/bin/ansible-playbook\"\nchmod +x \"$3/bin/pip\"\n",
            record("python"),
            record("pip")
                .replace('%', "%%")
                .replace('\\', "\\\\")
                .replace('\n', "\\n"),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let archive = tmp.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    std::fs::write(archive.join("requirements.txt"), "ansible-core\n").unwrap();
    acura_ha::bootstrap::ansible::prepare_venv(
        &archive,
        &tmp.path().join("cache"),
        python.to_str().unwrap(),
        &tmp.path().join("logs"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for tool in ["python", "pip"] {
        assert_eq!(
            std::fs::read_to_string(seen.join(tool)).unwrap(),
            "unset",
            "{tool} inherited ACURA_HA_BECOME_PASSWORD"
        );
    }
}

/// Issue 12 item 4: the speed settings the runner builds reach Ansible as Ansible reads them
/// (`ansible-config dump --only-changed` under the same environment, from the archive's folder):
/// pipelining, forks = the inventory's hosts (never below Ansible's 5), a ControlPersist that
/// outlives a playbook on the cluster's control-socket directory, and smart gathering with a
/// jsonfile fact cache in a 0700 directory of this process.
#[test]
fn speed_settings_reach_ansible() {
    let (_tmp, ws) = workspace();
    let inventory = ws.dir.ha_env_file();
    let hosts: String = (1..=7)
        .map(|k| format!("acura-{k} ansible_ssh_host=10.213.0.{}\n", 10 + k))
        .collect();
    std::fs::write(&inventory, format!("# ha_env_file\n[all]\n{hosts}")).unwrap();
    let env = ansible_env(&ws, &inventory, &Strategy::Linear).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((env.forks, env.pipelining), (7, true));
    assert!(
        !env.vars.iter().any(|(k, _)| k == "ANSIBLE_STRATEGY"),
        "{:?}",
        env.vars
    );
    let out = std::process::Command::new(ws.venv.join("bin/ansible-config"))
        .args(["dump", "--only-changed", "-t", "all"])
        .current_dir(&ws.archive)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dump}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let facts = ws.dir.fact_cache(std::process::id());
    for want in [
        "ANSIBLE_PIPELINING(env: ANSIBLE_PIPELINING) = True".to_string(),
        "DEFAULT_FORKS(env: ANSIBLE_FORKS) = 7".into(),
        "DEFAULT_GATHERING(env: ANSIBLE_GATHERING) = smart".into(),
        "CACHE_PLUGIN(env: ANSIBLE_CACHE_PLUGIN) = jsonfile".into(),
        format!(
            "CACHE_PLUGIN_CONNECTION(env: ANSIBLE_CACHE_PLUGIN_CONNECTION) = {}",
            facts.display()
        ),
        format!(
            "control_path_dir(env: ANSIBLE_SSH_CONTROL_PATH_DIR) = {}",
            ws.dir.control_sockets().display()
        ),
        "pipelining(env: ANSIBLE_PIPELINING) = True".into(),
    ] {
        assert!(
            dump.lines().any(|l| l == want),
            "missing {want:?} in:\n{dump}"
        );
    }
    let ssh_args = dump
        .lines()
        .find_map(|l| l.strip_prefix("ssh_args(env: ANSIBLE_SSH_ARGS) = "))
        .unwrap_or_else(|| panic!("no ssh_args in:\n{dump}"));
    for want in [
        "ControlMaster=auto",
        "ControlPersist=120s",
        "StrictHostKeyChecking=yes",
    ] {
        assert!(ssh_args.contains(want), "{ssh_args}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&facts).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", facts.display());

    // Fewer hosts than Ansible's own default still get its 5 forks.
    std::fs::write(&inventory, "acura-1 ansible_ssh_host=10.213.0.11\n").unwrap();
    assert_eq!(
        ansible_env(&ws, &inventory, &Strategy::Linear)
            .unwrap()
            .forks,
        5
    );
}

/// Issue 12 item 4: the tools venv has Mitogen (`scripts/setup-test-deps.sh`), so the runner
/// finds it through `ansible-playbook`'s own Python and Ansible reads the strategy it sets;
/// `ACURA_HA_ANSIBLE_STRATEGY=linear` turns it off, `mitogen` insists on it, anything else is
/// refused.
#[tokio::test]
async fn mitogen_is_found_in_the_venv_and_reaches_ansible() {
    let (_tmp, ws) = workspace();
    let playbook = ws.venv.join("bin/ansible-playbook");
    let (strategy, note) = pick_strategy(&playbook, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Strategy::Mitogen { plugins } = &strategy else {
        panic!(
            "the tools venv's ansible-playbook should run with Mitogen ({strategy:?}, {note:?}): run `{}`",
            common::SETUP
        );
    };
    assert!(plugins.join("mitogen_linear.py").is_file(), "{plugins:?}");
    assert_eq!(note, None);
    // The tests run the version `up` installs.
    let setup = std::fs::read_to_string(common::repo().join("scripts/setup-test-deps.sh")).unwrap();
    let pinned = acura_ha::bootstrap::ansible::MITOGEN_PIP
        .strip_prefix("mitogen==")
        .unwrap();
    assert!(
        setup
            .lines()
            .any(|l| l == format!("mitogen_version={pinned}")),
        "scripts/setup-test-deps.sh does not pin mitogen {pinned}"
    );
    for (requested, want) in [
        (Some("auto"), strategy.clone()),
        (Some("mitogen"), strategy.clone()),
        (Some("linear"), Strategy::Linear),
    ] {
        assert_eq!(pick_strategy(&playbook, requested).await.unwrap().0, want);
    }
    let err = pick_strategy(&playbook, Some("free"))
        .await
        .expect_err("not a strategy");
    assert!(
        err.to_string().contains("ACURA_HA_ANSIBLE_STRATEGY"),
        "{err}"
    );
    // A Python without Mitogen: Ansible's own strategy, or an error when Mitogen is insisted on.
    let bare = ws.archive.join("bare-ansible-playbook");
    std::fs::write(&bare, "#!/usr/bin/env python3\n").unwrap();
    assert_eq!(
        pick_strategy(&bare, None).await.unwrap(),
        (Strategy::Linear, None)
    );
    let err = pick_strategy(&bare, Some("mitogen"))
        .await
        .expect_err("no Mitogen there");
    assert!(err.to_string().contains("ansible_mitogen"), "{err}");

    let inventory = ws.dir.ha_env_file();
    let env = ansible_env(&ws, &inventory, &strategy).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(ws.venv.join("bin/ansible-config"))
        .args(["dump", "--only-changed", "-t", "all"])
        .current_dir(&ws.archive)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{dump}");
    for want in [
        "DEFAULT_STRATEGY(env: ANSIBLE_STRATEGY) = mitogen_linear".to_string(),
        format!(
            "DEFAULT_STRATEGY_PLUGIN_PATH(env: ANSIBLE_STRATEGY_PLUGINS) = ['{}']",
            plugins.display()
        ),
        "ANSIBLE_PIPELINING(env: ANSIBLE_PIPELINING) = True".into(),
    ] {
        assert!(
            dump.lines().any(|l| l == want),
            "missing {want:?} in:\n{dump}"
        );
    }
}

/// A login user whose sudo asks for its password and has `Defaults requiretty`, with a home
/// of its own; user and sudoers rule removed on drop.
struct PasswordSudoUser {
    name: String,
    sudoers: std::path::PathBuf,
    _home: tempfile::TempDir,
}

impl PasswordSudoUser {
    fn new(password: &str) -> PasswordSudoUser {
        common::require_root("the test makes a user and a sudoers rule");
        for tool in ["useradd", "userdel", "chpasswd", "visudo", "sudo", "chown"] {
            common::require(tool);
        }
        let name = format!("ahm{}", std::process::id() % 1_000_000);
        let home_dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = home_dir.path().join(&name);
        std::fs::create_dir(&home).unwrap();
        let ok = std::process::Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap();
        assert!(ok.success(), "useradd {name}");
        let user = PasswordSudoUser {
            sudoers: format!("/etc/sudoers.d/{name}").into(),
            name,
            _home: home_dir,
        };
        let ok = std::process::Command::new("chown")
            .arg(&user.name)
            .arg(&home)
            .status()
            .unwrap();
        assert!(ok.success(), "chown {}", home.display());
        let mut chpasswd = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{}:{password}\n", user.name).as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd");
        let n = &user.name;
        let staged = std::env::temp_dir().join(format!("sudoers-{n}"));
        std::fs::write(
            &staged,
            format!("Defaults:{n} requiretty\n{n} ALL=(ALL:ALL) ALL\n"),
        )
        .unwrap();
        let check = std::process::Command::new("visudo")
            .arg("-cf")
            .arg(&staged)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o440)).unwrap();
        std::fs::copy(&staged, &user.sudoers).unwrap();
        let _ = std::fs::remove_file(&staged);
        user
    }
}

impl Drop for PasswordSudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}

/// Issue 12 item 4: `up`'s playbooks run under Mitogen over real SSH as the guide's hosts are
/// reached: a login user whose sudo asks for a password (`-K`) and even has `requiretty` becomes
/// root; the host key stays pinned (a changed key and an unknown host are both refused, as
/// with Ansible's own ssh connection); the run's log names the strategy.
#[tokio::test]
async fn mitogen_becomes_over_pinned_ssh() {
    const ADDRESS: &str = "127.0.31.1";
    const PASSWORD: &str = "sudo pw {{ 1 }} 5e1a";
    let user = PasswordSudoUser::new(PASSWORD);
    let (tmp, ws) = workspace_with(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Who runs a task with become, under which process
      ansible.builtin.shell: 'id -un; tr "\0" " " < /proc/$PPID/cmdline'
      become: true
      register: who
      changed_when: false
    - name: Record it
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/../received.json"
        content: "{{ {'user': who.stdout_lines[0], 'parent': who.stdout_lines[1]} | to_json }}"
      delegate_to: localhost
"#,
    );
    let key = tmp.path().join("id_ed25519");
    common::sshd::keygen(&key, "ed25519", "");
    let sshd = common::sshd::Sshd::start(ADDRESS, &[&key.with_extension("pub")]);
    let host_key = std::fs::read_to_string(sshd.dir.path().join("host_ed25519.pub")).unwrap();
    let pin = |key_line: &str| {
        let mut words = key_line.split_whitespace();
        let (kind, body) = (words.next().unwrap(), words.next().unwrap());
        std::fs::write(ws.dir.known_hosts(), format!("{ADDRESS} {kind} {body}\n")).unwrap();
    };
    pin(&host_key);
    std::fs::write(
        ws.dir.ha_env_file(),
        format!(
            "h1 ansible_ssh_host={ADDRESS} ansible_ssh_private_key_file={} ansible_python_interpreter=/usr/bin/python3\n",
            key.display()
        ),
    )
    .unwrap();
    let mut spec = spec();
    spec.access.ssh_user = user.name.clone();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let secrets = || SecretVars(vec![("ansible_become_password".into(), PASSWORD.into())]);
    let run = playbook::k8s_master(&spec, "203.0.113.5", &inventory);
    run_playbook(&ws, &run, &secrets(), "mitogen-become", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = received(&ws);
    assert_eq!(got["user"], "root", "{got}");
    let parent = got["parent"].as_str().unwrap_or_default();
    assert!(
        parent.contains(&format!("(mitogen:{}@", user.name)),
        "the task did not run in a Mitogen context: {got}"
    );
    let logs = walk(&ws.dir.logs());
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("settings: strategy=mitogen_linear "), "{log}");
    assert!(!log.contains("5e1a"), "{log}");

    // Another key for the address, then no key at all: both refused before any task runs.
    let other = tmp.path().join("other_host_key");
    common::sshd::keygen(&other, "ed25519", "");
    for (what, pinned) in [
        (
            "a changed host key",
            std::fs::read_to_string(other.with_extension("pub")).unwrap(),
        ),
        ("an unknown host", String::new()),
    ] {
        let _ = std::fs::remove_file(ws.archive.join("received.json"));
        if pinned.is_empty() {
            std::fs::write(ws.dir.known_hosts(), "").unwrap();
        } else {
            pin(&pinned);
        }
        let err = run_playbook(&ws, &run, &secrets(), "mitogen-pin", true)
            .await
            .expect_err(what);
        let shown = err.to_string();
        assert!(shown.contains("host key"), "{what}: {shown}");
        assert!(
            !ws.archive.join("received.json").exists(),
            "{what}: a task ran"
        );
    }
    drop(sshd);
}

/// Issue 12 item 4: facts gathered by the first playbook serve the second (which gathers none),
/// through the runner's fact cache.
#[tokio::test]
async fn facts_gathered_by_step_5_serve_step_6() {
    let (_tmp, ws) = workspace();
    std::fs::write(
        ws.archive.join(acura_ha_api::tables::K8S_MASTER_PLAYBOOK),
        "- hosts: all\n  gather_facts: true\n  gather_subset: [min]\n  tasks: []\n",
    )
    .unwrap();
    std::fs::write(
        ws.archive.join(acura_ha_api::tables::HA_ACURA_PLAYBOOK),
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the cached facts
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/../received.json"
        content: "{{ {'system': ansible_facts.system | default('none')} | to_json }}"
"#,
    )
    .unwrap();
    let spec = spec();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let step5 = playbook::k8s_master(&spec, "203.0.113.5", &inventory);
    run_playbook(&ws, &step5, &SecretVars::default(), "gather", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cached = walk(&ws.dir.fact_cache(std::process::id()));
    assert_eq!(cached.len(), 1, "one host's facts: {cached:?}");
    let step6 = playbook::ha_acura(&spec, &["overlay/ha.yaml".into()], false, &inventory);
    run_playbook(&ws, &step6, &SecretVars::default(), "recall", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received(&ws)["system"], "Linux");
}

/// A system user with `Defaults requiretty`; user and sudoers rule removed on drop.
struct RequirettyUser {
    name: String,
    sudoers: std::path::PathBuf,
}

impl Drop for RequirettyUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}

/// Issue 12 item 4: pipelining needs sudo without `requiretty`; the preflight's classifier
/// recognises what this machine's real sudo says to a user with `Defaults requiretty` and no
/// terminal (as over SSH without a tty), and not what it says without the rule.
#[test]
fn requiretty_is_recognised_in_real_sudo_output() {
    common::require_root("the test makes a user and a sudoers rule");
    for tool in ["useradd", "userdel", "visudo", "sudo", "setsid", "runuser"] {
        common::require(tool);
    }
    let name = format!("ahr{}", std::process::id() % 1_000_000);
    let ok = std::process::Command::new("useradd")
        .args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", &name])
        .status()
        .unwrap();
    assert!(ok.success(), "useradd {name}");
    let user = RequirettyUser {
        sudoers: format!("/etc/sudoers.d/{name}").into(),
        name,
    };
    let sudo_n_true = |rule: &str| {
        let staged = std::env::temp_dir().join(format!("sudoers-{}", user.name));
        std::fs::write(&staged, rule).unwrap();
        let check = std::process::Command::new("visudo")
            .arg("-cf")
            .arg(&staged)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o440)).unwrap();
        std::fs::rename(&staged, &user.sudoers)
            .or_else(|_| std::fs::copy(&staged, &user.sudoers).map(|_| ()))
            .unwrap();
        // No controlling terminal, as a command over SSH without `-t`.
        std::process::Command::new("setsid")
            .args([
                "-w", "runuser", "-u", &user.name, "--", "sudo", "-n", "true",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let n = &user.name;
    let refused = sudo_n_true(&format!(
        "Defaults:{n} requiretty\n{n} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    ));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        acura_ha::bootstrap::preflight::requiretty(&stderr),
        "{stderr}"
    );
    let allowed = sudo_n_true(&format!("{n} ALL=(ALL:ALL) NOPASSWD: ALL\n"));
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(allowed.status.success(), "{stderr}");
    assert!(!acura_ha::bootstrap::preflight::requiretty(&stderr));
}
