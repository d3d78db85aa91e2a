//! The rendered `ha_env_file` read by the real `ansible-inventory --list` (ansible-core from
//! PyPI): exactly the expected hosts, each with exactly the expected variables.

mod common;

use std::process::Command;

use common::{acura_ha, example, require};
use serde_json::{Value, json};

fn ansible_inventory(text: &str) -> Value {
    let bin = require("ansible-inventory");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ha_env_file");
    std::fs::write(&file, text).unwrap();
    let home = dir.path().join("ansible-home");
    let out = Command::new(bin)
        .arg("-i")
        .arg(&file)
        .arg("--list")
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        // A host-list parse failure must be an error, not a warning with an empty inventory.
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_INVENTORY_ENABLED", "ini")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-inventory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn render_inventory(example_file: &str, state_dir: &std::path::Path) -> String {
    let out = acura_ha()
        .args(["render", "inventory", "-c"])
        .arg(example(example_file))
        .arg("--state-dir")
        .arg(state_dir)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn static_inventory_has_the_hosts_and_the_key() {
    let st = tempfile::tempdir().unwrap();
    let inv = ansible_inventory(&render_inventory("static.toml", st.path()));
    let hostvars = inv["_meta"]["hostvars"].as_object().unwrap();
    let mut names: Vec<_> = hostvars.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["acura-1", "acura-2", "acura-3"]);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            hostvars[n],
            json!({
                "ansible_ssh_host": format!("192.0.2.1{}", i + 1),
                "ansible_ssh_private_key_file": "~/.ssh/id_ed25519",
            })
        );
    }
    // The guide's file has no group header: the hosts are `ungrouped`, which `hosts: all` matches.
    let mut ungrouped: Vec<_> = inv["ungrouped"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ungrouped.sort();
    assert_eq!(ungrouped, names);
}

#[test]
fn local_inventory_names_the_generated_key() {
    let st = tempfile::tempdir().unwrap();
    let inv = ansible_inventory(&render_inventory("local.toml", st.path()));
    let hostvars = inv["_meta"]["hostvars"].as_object().unwrap();
    assert_eq!(hostvars.len(), 3);
    let key = st.path().join("acura-lab").join("id_ed25519");
    assert_eq!(
        hostvars["acura-lab-2"],
        json!({
            "ansible_ssh_host": "10.213.0.12",
            "ansible_ssh_private_key_file": key.display().to_string(),
        })
    );
}

#[test]
fn a_key_path_with_spaces_survives_the_ini_parser() {
    use acura_ha::bootstrap::ha_env::render;
    use acura_ha_api::model::Host;
    let hosts = vec![Host {
        name: "n-1".into(),
        address: "192.0.2.1".into(),
    }];
    let text = render("x", &hosts, Some(std::path::Path::new("/keys/my key")));
    let inv = ansible_inventory(&text);
    assert_eq!(
        inv["_meta"]["hostvars"]["n-1"]["ansible_ssh_private_key_file"],
        "/keys/my key"
    );
}

#[test]
fn cloud_inventory_before_provisioning_is_a_clear_error() {
    let st = tempfile::tempdir().unwrap();
    acura_ha()
        .args(["render", "inventory", "-c"])
        .arg(example("aws.toml"))
        .arg("--state-dir")
        .arg(st.path())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("error[AH300]"))
        .stderr(predicates::str::contains("instance[acura-1]"))
        .stderr(predicates::str::contains("up --only provision"));
}
