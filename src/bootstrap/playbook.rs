//! The two `ansible-playbook` invocations of the guide's Steps 5 and 6, with exactly its extra
//! variables, as argument vectors. The plan shows them; the runner executes them.

use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::tables::{ANSIBLE_PYTHON_INTERPRETER, HA_ACURA_PLAYBOOK, K8S_MASTER_PLAYBOOK};
use serde::Serialize;

/// One `-e` argument.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ExtraVar {
    /// `-e "key=value"`: a value the tool writes itself (a constant, a boolean). It stays on
    /// the command line that runs.
    KeyValue(String, String),
    /// A value the tool did not write itself (from the cluster file, the state, or read from
    /// the cluster): shown as the guide writes it (`-e key=value`, or `-e '{"key": <json>}'`
    /// for a list), but the runner hands it to Ansible as `!unsafe` data, which Ansible never
    /// templates (a `{{ lookup('pipe', …) }}` in it stays text).
    Data(String, serde_json::Value),
}

impl ExtraVar {
    fn kv(k: &str, v: impl ToString) -> Self {
        ExtraVar::KeyValue(k.to_string(), v.to_string())
    }

    fn data(k: &str, v: impl Into<serde_json::Value>) -> Self {
        ExtraVar::Data(k.to_string(), v.into())
    }

    pub fn key(&self) -> &str {
        match self {
            ExtraVar::KeyValue(k, _) | ExtraVar::Data(k, _) => k,
        }
    }

    /// The text after `-e`.
    pub fn arg(&self) -> String {
        match self {
            ExtraVar::KeyValue(k, v) => format!("{k}={v}"),
            ExtraVar::Data(k, serde_json::Value::String(v)) => format!("{k}={v}"),
            ExtraVar::Data(k, v) => serde_json::json!({ k: v }).to_string(),
        }
    }
}

/// Whether `o` names an overlay of the archive: `overlay/<name>.yaml` or `.yml`, `<name>` of
/// ASCII letters, digits, `.`, `_` and `-`, without `..`. Overlays enter from the cluster file,
/// `update --add-overlay` and Acura's store on a node; every one passes here before a playbook
/// gets it.
pub fn check_overlay(o: &str) -> Result<(), String> {
    let name = o
        .strip_prefix("overlay/")
        .and_then(|r| r.strip_suffix(".yaml").or_else(|| r.strip_suffix(".yml")));
    let ok = name.is_some_and(|n| {
        !n.is_empty()
            && !o.contains("..")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{o:?} is not an overlay of the archive: expected overlay/<name>.yaml or overlay/<name>.yml, \
             <name> of letters, digits, '.', '_' and '-' (no \"..\")"
        ))
    }
}

/// One playbook run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaybookRun {
    pub playbook: &'static str,
    pub extra_vars: Vec<ExtraVar>,
    /// The `ha_env_file`'s path (the playbooks run from the archive's folder).
    pub inventory: String,
}

impl PlaybookRun {
    /// `ansible-playbook -e … -i ha_env_file <playbook>`, in the guide's argument order.
    pub fn argv(&self) -> Vec<String> {
        self.command(|_| true)
    }

    /// What the runner executes: the command line without the [`ExtraVar::Data`] values, and
    /// those values, which go to Ansible as `!unsafe` data in an extra-vars document.
    pub fn split(&self) -> (Vec<String>, Vec<(String, serde_json::Value)>) {
        let data = self
            .extra_vars
            .iter()
            .filter_map(|v| match v {
                ExtraVar::Data(k, value) => Some((k.clone(), value.clone())),
                ExtraVar::KeyValue(..) => None,
            })
            .collect();
        (self.command(|v| matches!(v, ExtraVar::KeyValue(..))), data)
    }

    /// The command with the extra variables `on_line` keeps.
    fn command(&self, on_line: impl Fn(&ExtraVar) -> bool) -> Vec<String> {
        let mut argv = vec!["ansible-playbook".to_string()];
        for v in self.extra_vars.iter().filter(|v| on_line(v)) {
            argv.push("-e".into());
            argv.push(v.arg());
        }
        argv.extend([
            "-i".to_string(),
            self.inventory.to_string(),
            self.playbook.to_string(),
        ]);
        argv
    }

    /// The command as a user would type it (shell-quoted).
    pub fn command_line(&self) -> String {
        self.argv()
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes an argument for a POSIX shell only when it needs it (`key=value` stays as it is).
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,@+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Step 5: install the Kubernetes masters.
pub fn k8s_master(spec: &ClusterSpec, lb_address: &str, inventory: &str) -> PlaybookRun {
    PlaybookRun {
        playbook: K8S_MASTER_PLAYBOOK,
        extra_vars: vec![
            ExtraVar::data("ansible_ssh_user", spec.access.ssh_user.as_str()),
            ExtraVar::data("lb_address", lb_address),
            ExtraVar::kv("ansible_python_interpreter", ANSIBLE_PYTHON_INTERPRETER),
            ExtraVar::data("logstash_host", spec.bootstrap.logstash_host.as_str()),
        ],
        inventory: inventory.to_string(),
    }
}

/// "Add a new node", step 5: Step 5's playbook against the new node only, with the guide's
/// variables. `master_token`, `master_discovery_token` and `master_cert_key` are not here: the
/// runner hands them to Ansible through a FIFO (never a file on disk, never a command line).
pub fn k8s_join(spec: &ClusterSpec, lb_address: &str, inventory: &str) -> PlaybookRun {
    PlaybookRun {
        playbook: K8S_MASTER_PLAYBOOK,
        extra_vars: vec![
            ExtraVar::data("ansible_ssh_user", spec.access.ssh_user.as_str()),
            ExtraVar::kv("ansible_python_interpreter", ANSIBLE_PYTHON_INTERPRETER),
            ExtraVar::data("lb_address", lb_address),
            ExtraVar::data("logstash_host", spec.bootstrap.logstash_host.as_str()),
            ExtraVar::kv("copy_patch", spec.bootstrap.copy_patch),
            ExtraVar::kv("copy_ca", spec.bootstrap.copy_ca),
        ],
        inventory: inventory.to_string(),
    }
}

/// Step 6: deploy Acura (`update` adds the "How to update" section's `update_cluster=true`).
pub fn ha_acura(
    spec: &ClusterSpec,
    overlays: &[String],
    update: bool,
    inventory: &str,
) -> PlaybookRun {
    let mut extra_vars = vec![
        ExtraVar::data("ansible_ssh_user", spec.access.ssh_user.as_str()),
        ExtraVar::data("overlay_list", serde_json::json!(overlays)),
        ExtraVar::kv("copy_patch", spec.bootstrap.copy_patch),
        ExtraVar::kv("copy_ca", spec.bootstrap.copy_ca),
    ];
    if update {
        extra_vars.push(ExtraVar::kv("update_cluster", true));
    }
    PlaybookRun {
        playbook: HA_ACURA_PLAYBOOK,
        extra_vars,
        inventory: inventory.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        crate::config::parse(
            "t.toml",
            r#"
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
"#,
        )
        .unwrap()
    }

    #[test]
    fn step5_is_the_guides_command() {
        assert_eq!(
            k8s_master(&spec(), "203.0.113.5", "ha_env_file").command_line(),
            "ansible-playbook -e ansible_ssh_user=ubuntu -e lb_address=203.0.113.5 \
             -e ansible_python_interpreter=/usr/bin/python3 -e logstash_host= \
             -i ha_env_file ansible/k8s-master.yaml"
        );
    }

    #[test]
    fn step6_is_the_guides_command() {
        let s = spec();
        let run = ha_acura(&s, &s.overlays(), false, "ha_env_file");
        assert_eq!(
            run.argv()[4],
            r#"{"overlay_list":["overlay/ha.yaml","overlay/golden-image.yml","overlay/distr-dr.yaml","overlay/startup_reconfigure.yaml"]}"#
        );
        assert!(
            run.command_line().ends_with(
                "-e copy_patch=true -e copy_ca=true -i ha_env_file ansible/ha-acura.yaml"
            )
        );
        assert!(
            ha_acura(&s, &s.overlays(), true, "ha_env_file")
                .command_line()
                .contains("-e update_cluster=true")
        );
    }

    #[test]
    fn overlays_are_archive_paths() {
        for ok in [
            "overlay/ha.yaml",
            "overlay/golden-image.yml",
            "overlay/startup_reconfigure.yaml",
            "overlay/v1.2-x.yaml",
        ] {
            assert_eq!(check_overlay(ok), Ok(()), "{ok}");
        }
        for bad in [
            "{{ lookup('pipe', 'id') }}",
            "overlay/{{ 7*6 }}.yaml",
            "overlay/../../etc/passwd.yaml",
            "overlay/..yaml",
            "overlay/.yaml",
            "overlay/a b.yaml",
            "overlay/x.json",
            "/overlay/x.yaml",
            "overlay/sub/x.yaml",
            "",
        ] {
            let e = check_overlay(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn data_values_leave_the_command_line_that_runs() {
        let s = spec();
        let run = ha_acura(&s, &s.overlays(), true, "ha_env_file");
        let (argv, data) = run.split();
        assert_eq!(
            argv.join(" "),
            "ansible-playbook -e copy_patch=true -e copy_ca=true -e update_cluster=true \
             -i ha_env_file ansible/ha-acura.yaml"
        );
        let keys: Vec<&str> = data.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ansible_ssh_user", "overlay_list"]);
        let (argv, data) = k8s_master(&s, "203.0.113.5", "ha_env_file").split();
        assert!(!argv.iter().any(|a| a.contains("203.0.113.5")), "{argv:?}");
        assert_eq!(data.len(), 3);
    }
}
