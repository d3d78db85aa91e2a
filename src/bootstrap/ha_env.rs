//! The guide's `ha_env_file` (Step 4): one `<HOSTNAME> ansible_ssh_host=<IP>` line per node, plus
//! `ansible_ssh_private_key_file=` when the cluster uses a key file. (The guide's text lost the
//! variable's name; Ansible's is `ansible_ssh_private_key_file`.)

use std::path::Path;

use acura_ha_api::model::Host;

/// The file's text. Hosts land in Ansible's `ungrouped` group, which `hosts: all` matches, as in
/// the guide.
pub fn render(cluster: &str, nodes: &[Host], key_file: Option<&Path>) -> String {
    let mut out =
        format!("# ha_env_file of cluster {cluster}, written by acura-ha (the guide's Step 4)\n");
    for h in nodes {
        out.push_str(&line(h, key_file));
        out.push('\n');
    }
    out
}

/// One host's line.
pub fn line(host: &Host, key_file: Option<&Path>) -> String {
    let mut l = format!("{} ansible_ssh_host={}", host.name, host.address);
    if let Some(k) = key_file {
        l.push_str(&format!(
            " ansible_ssh_private_key_file={}",
            quote(&k.display().to_string())
        ));
    }
    l
}

/// INI inventory values are split on white space; quote a path that has any.
fn quote(s: &str) -> String {
    if s.contains(char::is_whitespace) || s.contains(['"', '\'', '#', ';']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_guide() {
        let hosts = vec![Host {
            name: "acura-1".into(),
            address: "10.0.0.11".into(),
        }];
        assert_eq!(
            render("demo", &hosts, None).lines().nth(1).unwrap(),
            "acura-1 ansible_ssh_host=10.0.0.11"
        );
        assert_eq!(
            line(&hosts[0], Some(Path::new("/k/id key"))),
            "acura-1 ansible_ssh_host=10.0.0.11 ansible_ssh_private_key_file=\"/k/id key\""
        );
    }
}
