//! What a lab host is made of besides its network: its own `/etc/ssh` (sshd_config, host key,
//! authorized keys), `/etc/hosts`, `/etc/resolv.conf`, `/root`, `/home`, `/etc/nginx`, `/run`
//! and `/var/log/nginx`, each a directory or file under the host's directory that its sshd (and so
//! every session and every daemon the bootstrap starts over SSH) sees through bind mounts in a
//! private mount namespace. The machine's own files are never written.
//!
//! sshd's own paths are the host's view (`/etc/ssh/...`, `/run/sshd.pid`), not the cluster
//! directory's: the cluster directory may itself lie under `/root` or `/run`, which the host
//! sees replaced. For the same reason the bind that hides the cluster directory is made last.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::names::HostNames;
use crate::preflight::SSHD;

/// A login user other than root, as `/etc/passwd` (which the hosts share) has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl LoginUser {
    /// Where its home is in the host directory: `home/<rest>` for a home under `/home`
    /// (another home is the machine's own, shared by every host).
    pub fn home_in(&self, host_dir: &Path) -> Option<PathBuf> {
        let rest = self.home.strip_prefix("/home").ok()?;
        let plain = rest
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        (plain && rest.components().next().is_some()).then(|| host_dir.join("home").join(rest))
    }
}

/// `name`'s account from `passwd` text; root (uid 0) and unknown users are `None`.
pub fn login_user(passwd: &str, name: &str) -> Option<LoginUser> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        let (uid, gid) = (f[2].parse().ok()?, f[3].parse().ok()?);
        (uid != 0).then(|| LoginUser {
            name: name.to_string(),
            uid,
            gid,
            home: PathBuf::from(f[5]),
        })
    })
}

/// `(source under the host directory, target in the host's view)`, in the guide's order.
const BINDS: &[(&str, &str)] = &[
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
    ("etc-ssh", "/etc/ssh"),
    ("etc-nginx", "/etc/nginx"),
    ("log-nginx", "/var/log/nginx"),
    ("root", "/root"),
    // A login user other than root (`access.ssh_user`) gets a private home on each host too,
    // as on a VM: what a playbook keeps in `~` is per host.
    ("home", "/home"),
    ("run", "/run"),
];

/// The host's view of its sshd files.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
const HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";
const AUTHORIZED_KEYS: &str = "/etc/ssh/authorized_keys";
const PID_FILE: &str = "/run/sshd.pid";

/// The bind mounts of a host: sources under `host_dir`, the one whose target hides
/// `cluster_dir` (if any) last, so every source is still reachable when it is mounted.
pub fn binds(host_dir: &Path, cluster_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let (mut keep, hiding): (Vec<_>, Vec<_>) = BINDS
        .iter()
        .map(|(src, target)| (host_dir.join(src), *target))
        .partition(|(_, target)| !cluster_dir.starts_with(target));
    keep.extend(hiding);
    keep
}

/// `sh -c` script and its arguments: set the hostname, bind every file, exec sshd (absolute
/// path: sshd re-executes itself). Paths travel as positional arguments, never spliced into
/// the script, so no path can be misread by the shell.
pub fn launch_args(host: &HostNames, cluster_dir: &Path) -> Vec<std::ffi::OsString> {
    let binds = binds(&host.dir, cluster_dir);
    let mut script = String::from("set -e\nhostname \"$1\"\n");
    for (k, (_, target)) in binds.iter().enumerate() {
        script.push_str(&format!("mount --bind \"${}\" {target}\n", k + 2));
    }
    script.push_str(&format!("exec {SSHD} -f {SSHD_CONFIG}\n"));
    let mut args: Vec<std::ffi::OsString> = vec![
        "--uts".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        host.name.clone().into(),
    ];
    args.extend(binds.into_iter().map(|(src, _)| src.into_os_string()));
    args
}

/// Key-only root login through the one authorized key, the host's own key, no PAM (no
/// systemd-logind here), and room for Ansible's parallel connections.
pub fn sshd_config(address: Ipv4Addr) -> String {
    format!(
        "# acura-ha lab host: generated, rewritten by `acura-ha up`.\n\
         ListenAddress {address}\n\
         Port 22\n\
         HostKey {HOST_KEY}\n\
         PidFile {PID_FILE}\n\
         AuthorizedKeysFile {AUTHORIZED_KEYS}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         MaxStartups 100:30:200\n\
         MaxSessions 50\n\
         PrintMotd no\n\
         UseDNS no\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
}

/// `localhost` and every lab host, so no name the host looks up (its own included, as
/// `hostname -f` and Ansible's fact gathering do) needs DNS.
pub fn hosts_file(lab: &[(String, Ipv4Addr)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, addr) in lab {
        out.push_str(&format!("{addr}\t{name}\n"));
    }
    out
}

/// The lab resolver only; one short try, so a failed lookup fails fast.
pub fn resolv_conf(gateway: Ipv4Addr) -> String {
    format!("nameserver {gateway}\noptions timeout:1 attempts:1\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bind_hiding_the_cluster_dir_comes_last() {
        let host = Path::new("/root/p/.acura-ha/c/hosts/n1");
        let order: Vec<&str> = binds(host, Path::new("/root/p/.acura-ha/c"))
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(order.last(), Some(&"/root"));
        let order: Vec<&str> = binds(host, Path::new("/tmp/x"))
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(order.last(), Some(&"/run"));
        // /run must not match /runner.
        let order: Vec<&str> = binds(host, Path::new("/runner/x"))
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(order.last(), Some(&"/run"));
        assert_eq!(order.len(), 8);
        let order: Vec<&str> = binds(host, Path::new("/home/me/p"))
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(order.last(), Some(&"/home"));
    }

    #[test]
    fn a_login_user_gets_a_home_under_the_host_directory() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ndeploy:x:1001:1002::/home/deploy:/bin/sh\nsvc:x:999:999::/var/lib/svc:/bin/sh\nodd:x:1003:1003::/home/../etc:/bin/sh\n";
        assert_eq!(login_user(passwd, "root"), None);
        assert_eq!(login_user(passwd, "nobody-here"), None);
        let u = login_user(passwd, "deploy").expect("deploy");
        assert_eq!((u.uid, u.gid), (1001, 1002));
        let host = Path::new("/lab/hosts/n1");
        assert_eq!(u.home_in(host), Some(host.join("home/deploy")));
        let svc = login_user(passwd, "svc").expect("svc");
        assert_eq!(svc.home_in(host), None);
        assert_eq!(login_user(passwd, "odd").expect("odd").home_in(host), None);
    }

    #[test]
    fn sshd_config_is_key_only() {
        let c = sshd_config("10.0.0.11".parse().expect("ip"));
        assert!(c.contains("ListenAddress 10.0.0.11\n"));
        assert!(c.contains("PasswordAuthentication no\n"));
        assert!(c.contains("PermitRootLogin prohibit-password\n"));
    }
}
