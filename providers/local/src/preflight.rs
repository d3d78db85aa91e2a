//! What must hold before the lab touches the machine: root, the tools it drives, a `[local]`
//! section, and an admin CIDR that admits the deploy side. Each check fails with what to do,
//! before anything is created.

use std::path::Path;

use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;

use crate::names::LabNames;

/// The effective user ID of this process.
pub fn current_euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Namespaces, bridges, routes and bind mounts need root: refuse clearly rather than fail
/// half-way with "Operation not permitted". Takes the euid so it can be tested as root.
pub fn require_root(euid: u32) -> Result<(), ProviderError> {
    if euid == 0 {
        Ok(())
    } else {
        Err(ProviderError::Unsupported(format!(
            "the local target creates network namespaces, a bridge and a route on this machine \
             and must run as root (effective user ID {euid}): run acura-ha with sudo"
        )))
    }
}

/// A tool the lab runs and the Debian package that provides it.
struct Component {
    path: &'static str,
    package: &'static str,
}

/// Absolute paths: sshd refuses to re-exec from a relative one, and a `PATH` under sudo may
/// lack `/usr/sbin`.
const COMPONENTS: &[Component] = &[
    Component {
        path: "/usr/sbin/ip",
        package: "iproute2",
    },
    Component {
        path: "/usr/sbin/nft",
        package: "nftables",
    },
    Component {
        path: "/usr/sbin/dnsmasq",
        package: "dnsmasq-base",
    },
    Component {
        path: "/usr/sbin/sshd",
        package: "openssh-server",
    },
    Component {
        path: "/usr/bin/ssh-keygen",
        package: "openssh-client",
    },
    Component {
        path: "/usr/bin/unshare",
        package: "util-linux",
    },
    // The NGINX host gets a private copy of the machine's /etc/nginx, and its /var/log/nginx
    // is a bind mount target.
    Component {
        path: "/etc/nginx",
        package: "nginx",
    },
    Component {
        path: "/var/log/nginx",
        package: "nginx",
    },
];

pub const IP: &str = "/usr/sbin/ip";
pub const NFT: &str = "/usr/sbin/nft";
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
pub const SSHD: &str = "/usr/sbin/sshd";
pub const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
pub const UNSHARE: &str = "/usr/bin/unshare";

/// Every missing component, named with its package, in one error.
pub fn require_components() -> Result<(), ProviderError> {
    let missing: Vec<String> = COMPONENTS
        .iter()
        .filter(|c| !Path::new(c.path).exists())
        .map(|c| format!("{} (package {})", c.path, c.package))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::Unsupported(format!(
            "the local target needs {}: install them with `sudo scripts/setup-test-deps.sh` \
             (or apt-get install iproute2 nftables dnsmasq-base openssh-server nginx)",
            missing.join(", ")
        )))
    }
}

/// The spec must be a `[local]` one whose admin CIDRs admit the deploy side (`.1`): the
/// firewall is the guide's table, so without that nothing could reach the hosts' SSH.
pub fn require_local_spec(spec: &ClusterSpec, names: &LabNames) -> Result<(), ProviderError> {
    if spec.local.is_none() {
        return Err(ProviderError::Unsupported(
            "the local provider needs a [local] section in the cluster file".into(),
        ));
    }
    let gw = std::net::IpAddr::V4(names.gateway);
    if !spec.access.admin_cidrs.iter().any(|c| c.contains(&gw)) {
        return Err(ProviderError::Unsupported(format!(
            "access.admin_cidrs must include the deploy side of the lab bridge, {gw} (e.g. \
             \"{gw}/32\"): the hosts' firewall admits SSH only from the admin CIDRs"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_passes_others_are_told_to_use_sudo() {
        assert!(require_root(0).is_ok());
        let err = require_root(1000).expect_err("not root");
        assert!(matches!(err, ProviderError::Unsupported(_)));
        assert!(err.to_string().contains("must run as root"), "{err}");
    }
}
