//! The playbook runner against the real `ansible-playbook` (ansible-core from the tools venv)
//! with tiny local playbooks, for issue 11's findings: values the tool did not write itself
//! arrive literally, never templated (#2).

mod common;

use acura_ha::bootstrap::ansible::{SecretVars, Workspace, run_playbook};
use acura_ha::bootstrap::playbook;
use acura_ha::files::ClusterDir;
use common::tools_venv;

const SPEC: &str = r#"
[cluster]
name = "demo"
[load_balancer]
kind = "external"
address = "203.0.113.5"
[access]
admin_cidrs = ["198.51.100.7/32"]
ssh_user = "ubuntu"
ssh_agent = true
[static]
nodes = [{ name = "a-1", address = "192.0.2.11" }, { name = "a-2", address = "192.0.2.12" }, { name = "a-3", address = "192.0.2.13" }]
"#;

/// A playbook that writes the variables it received, as JSON, next to itself.
const ECHO: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the variables received
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/../received.json"
        content: "{{ {'lb_address': lb_address | default(''), 'ssh_user': ansible_ssh_user, 'overlays': overlay_list | default([]), 'password': ansible_become_password | default('')} | to_json }}"
"#;

/// A workspace whose "archive" holds the echo playbook under both of the guide's names, run
/// with the tools venv's Ansible against localhost.
fn workspace() -> (tempfile::TempDir, Workspace) {
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
        std::fs::write(archive.join(p), ECHO).unwrap();
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
    let spec = acura_ha::config::parse("t.toml", SPEC).unwrap();
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
    let spec = acura_ha::config::parse("t.toml", SPEC).unwrap();
    let inventory = ws.dir.ha_env_file().display().to_string();
    let run = playbook::k8s_master(&spec, "lb{{ 7*6 }}.example", &inventory);
    run_playbook(&ws, &run, &SecretVars::default(), "untemplated-lb", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = received(&ws);
    assert_eq!(got["lb_address"], "lb{{ 7*6 }}.example", "{got}");
    assert_eq!(got["ssh_user"], "ubuntu", "{got}");
}
