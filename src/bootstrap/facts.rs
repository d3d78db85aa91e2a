//! Preflight facts: one command per host gathers everything the guide asks to check (hostname,
//! OS release, root filesystem size and layout, RAM, vCPUs, resolv.conf and a DNS lookup, sudo,
//! time sync), and [`check`] judges them against the minimums in force.

use std::collections::BTreeMap;

use acura_ha_api::tables::NodeMinimums;
use serde::Serialize;

/// Mount points that must not be separate filesystems ("the entire 200 GB should be available
/// as a single partition, without separate partitions for /home, etc.").
const SEPARATE_PARTITION_CANDIDATES: &[&str] =
    &["/home", "/var", "/usr", "/opt", "/srv", "/var/lib", "/tmp"];

/// The gathering script: POSIX sh, `key=value` lines, no secrets, read-only.
pub fn script(dns_name: &str) -> String {
    let candidates = SEPARATE_PARTITION_CANDIDATES.join(" ");
    let dns = super::ssh::shell_quote(dns_name);
    format!(
        r#"export LC_ALL=C
echo "hostname=$(hostname)"
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${{ID:-}}"
echo "os_version=${{VERSION_ID:-}}"
echo "os_pretty=${{PRETTY_NAME:-}}"
df -P -B1 / | awk 'NR==2 {{print "root_bytes=" $2}}'
root_dev=$(stat -c %d /)
for p in {candidates}; do
  if [ -d "$p" ] && [ "$(stat -c %d "$p")" != "$root_dev" ]; then
    t=$(df -P "$p" | awk 'NR==2 {{print $1}}')
    case "$t" in tmpfs|none|overlay) ;; *) echo "separate=$p";; esac
  fi
done
awk '/^MemTotal:/ {{print "mem_kb=" $2}}' /proc/meminfo
echo "vcpus=$(nproc)"
echo "nameservers=$(awk '/^nameserver/ {{printf "%s%s", s, $2; s=","}}' /etc/resolv.conf 2>/dev/null)"
if command -v getent >/dev/null && timeout 5 getent ahosts {dns} >/dev/null 2>&1; then echo dns=ok; else echo dns=fail; fi
if [ "$(id -u)" = 0 ]; then echo sudo=root; elif sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=password; fi
if command -v timedatectl >/dev/null && [ -d /run/systemd/system ]; then
  echo "time_sync=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"
elif command -v chronyc >/dev/null; then
  chronyc tracking >/dev/null 2>&1 && echo time_sync=yes || echo time_sync=no
else
  echo time_sync=unknown
fi
"#
    )
}

/// What one host reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub hostname: String,
    pub os_id: String,
    pub os_version: String,
    pub os_pretty: String,
    pub root_bytes: u64,
    pub separate: Vec<String>,
    pub mem_kb: u64,
    pub vcpus: u32,
    pub nameservers: Vec<String>,
    pub dns_ok: bool,
    /// `root`, `ok` (passwordless) or `password`.
    pub sudo: String,
    /// `yes`, `no` or `unknown` (no systemd, no chrony).
    pub time_sync: String,
}

impl Facts {
    pub fn parse(text: &str) -> Facts {
        let mut kv: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                kv.entry(k.trim()).or_default().push(v.trim());
            }
        }
        let one = |k: &str| {
            kv.get(k)
                .and_then(|v| v.first())
                .copied()
                .unwrap_or("")
                .to_string()
        };
        Facts {
            hostname: one("hostname"),
            os_id: one("os_id"),
            os_version: one("os_version"),
            os_pretty: one("os_pretty"),
            root_bytes: one("root_bytes").parse().unwrap_or(0),
            separate: kv
                .get("separate")
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            mem_kb: one("mem_kb").parse().unwrap_or(0),
            vcpus: one("vcpus").parse().unwrap_or(0),
            nameservers: one("nameservers")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            dns_ok: one("dns") == "ok",
            sudo: one("sudo"),
            time_sync: match one("time_sync").as_str() {
                "yes" => "yes".into(),
                "no" => "no".into(),
                _ => "unknown".into(),
            },
        }
    }

    pub fn root_gib(&self) -> f64 {
        self.root_bytes as f64 / (1u64 << 30) as f64
    }

    pub fn ram_gib(&self) -> f64 {
        self.mem_kb as f64 / (1u64 << 20) as f64
    }
}

/// One failed check, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub message: String,
    /// A warning does not stop `up`.
    pub fatal: bool,
}

/// What a node is checked against.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub minimums: NodeMinimums,
    /// `"<ID> <VERSION_ID>"`.
    pub os: Vec<String>,
    pub dns_name: String,
    /// The name the node must have (the inventory's), if the provider chose it.
    pub hostname: Option<String>,
    /// Whether the bootstrap may ask for a sudo password (`-K`).
    pub become_password: bool,
}

/// The kernel and firmware keep part of a VM's memory, and a filesystem part of its volume:
/// accept what a VM of the nominal size really shows.
const RAM_SLACK: f64 = 0.90;
const DISK_SLACK: f64 = 0.95;

pub fn check(f: &Facts, want: &Expectations) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut fail = |check: &'static str, message: String| {
        out.push(Finding {
            check,
            message,
            fatal: true,
        })
    };
    if f.hostname.is_empty() {
        fail("hostname", "the host reported no hostname".into());
    } else if f.hostname.contains('.') {
        fail(
            "hostname",
            format!(
                "hostname {:?} is a fully qualified name: the guide needs hostnames without dots (hostnamectl set-hostname <short name>)",
                f.hostname
            ),
        );
    } else if let Some(expected) = &want.hostname
        && &f.hostname != expected
    {
        fail(
            "hostname",
            format!(
                "hostname is {:?}, the inventory calls it {expected:?}: set the hostname or the name in the cluster file",
                f.hostname
            ),
        );
    }
    let os = format!("{} {}", f.os_id, f.os_version);
    if !want.os.iter().any(|o| o == &os) {
        fail(
            "os",
            format!(
                "runs {} ({os}); the cluster expects {}",
                if f.os_pretty.is_empty() {
                    "an unknown OS"
                } else {
                    &f.os_pretty
                },
                want.os.join(" or ")
            ),
        );
    }
    let m = &want.minimums;
    if f.root_gib() < m.root_gb as f64 * DISK_SLACK {
        fail(
            "disk",
            format!(
                "root filesystem is {:.1} GiB; at least {} GB are needed",
                f.root_gib(),
                m.root_gb
            ),
        );
    }
    if m.single_partition && !f.separate.is_empty() {
        fail(
            "disk",
            format!(
                "{} on separate partitions; the guide needs the whole volume as one root partition",
                f.separate.join(", ")
            ),
        );
    }
    if f.ram_gib() < m.ram_gb as f64 * RAM_SLACK {
        fail(
            "ram",
            format!(
                "{:.1} GiB of RAM; at least {} GB are needed",
                f.ram_gib(),
                m.ram_gb
            ),
        );
    }
    if f.vcpus < m.vcpus {
        fail(
            "cpu",
            format!("{} vCPUs; at least {} are needed", f.vcpus, m.vcpus),
        );
    }
    if f.nameservers.is_empty() {
        fail(
            "dns",
            "no nameserver in /etc/resolv.conf: check the subnet's DHCP/DNS settings".into(),
        );
    } else if !f.dns_ok {
        fail(
            "dns",
            format!(
                "cannot resolve {:?} through {}: check the subnet's DNS servers",
                want.dns_name,
                f.nameservers.join(", ")
            ),
        );
    }
    match f.sudo.as_str() {
        "root" | "ok" => {}
        "password" if want.become_password => {}
        _ => fail(
            "sudo",
            "sudo asks for a password: pass -K (--ask-become-pass) as the guide does, or allow passwordless sudo".into(),
        ),
    }
    match f.time_sync.as_str() {
        "yes" => {}
        "no" => out.push(Finding {
            check: "time",
            message: "the clock is not synchronised (NTP): etcd and TLS need synchronised clocks"
                .into(),
            fatal: true,
        }),
        _ => out.push(Finding {
            check: "time",
            message: "time synchronisation could not be checked (no systemd-timesyncd or chrony)"
                .into(),
            fatal: false,
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::tables::GUIDE_MINIMUMS;

    const GOOD: &str = "hostname=acura-1\nos_id=ubuntu\nos_version=20.04\nos_pretty=Ubuntu 20.04.6 LTS\nroot_bytes=211243999232\nmem_kb=16377012\nvcpus=8\nnameservers=10.0.0.2\ndns=ok\nsudo=ok\ntime_sync=yes\n";

    fn want() -> Expectations {
        Expectations {
            minimums: GUIDE_MINIMUMS,
            os: vec!["ubuntu 20.04".into()],
            dns_name: "archive.ubuntu.com".into(),
            hostname: Some("acura-1".into()),
            become_password: false,
        }
    }

    #[test]
    fn a_guide_sized_vm_passes() {
        assert_eq!(check(&Facts::parse(GOOD), &want()), vec![]);
    }

    #[test]
    fn each_shortfall_is_explained() {
        let bad = GOOD
            .replace("hostname=acura-1", "hostname=acura-1.example.com")
            .replace("os_version=20.04", "os_version=18.04")
            .replace("root_bytes=211243999232", "root_bytes=32212254720")
            .replace("mem_kb=16377012", "mem_kb=8000000")
            .replace("vcpus=8", "vcpus=2")
            .replace("dns=ok", "dns=fail")
            .replace("sudo=ok", "sudo=password")
            + "separate=/home\n";
        let found = check(&Facts::parse(&bad), &want());
        let checks: Vec<_> = found.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            [
                "hostname", "os", "disk", "disk", "ram", "cpu", "dns", "sudo"
            ]
        );
        assert!(found[0].message.contains("without dots"));
        assert!(found.iter().all(|f| f.fatal));
    }
}
