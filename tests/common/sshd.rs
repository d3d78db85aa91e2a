//! A real OpenSSH server on a loopback address, for the SSH layer's tests: its own host key and
//! config in a temporary directory, key-only login as root, stopped by pid.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::require;

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub address: String,
    pub config: PathBuf,
}

/// Generates a key pair with ssh-keygen (`kind` = ed25519 | rsa), optionally password-protected.
pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    keygen_with(path, &["-t", kind], passphrase);
}

/// Generates a key pair with ssh-keygen and extra arguments (`-t ecdsa -b 384`, `-m PEM`,
/// `-m PKCS8`), optionally password-protected.
pub fn keygen_with(path: &Path, args: &[&str], passphrase: &str) {
    let out = Command::new(require("ssh-keygen"))
        .arg("-q")
        .args(args)
        .args(["-N", passphrase, "-C", "acura-ha-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Starts sshd on `address:22`, admitting the public keys `authorized`.
    pub fn start(address: &str, authorized: &[&Path]) -> Sshd {
        Sshd::start_with(address, authorized, &["-t", "ed25519"], "")
    }

    /// Starts sshd with one host key made by `ssh-keygen host_key_args` and `extra` lines of
    /// configuration (`HostKeyAlgorithms …`, `KexAlgorithms …`), which sshd takes before the
    /// defaults that follow them.
    pub fn start_with(
        address: &str,
        authorized: &[&Path],
        host_key_args: &[&str],
        extra: &str,
    ) -> Sshd {
        super::require_root("sshd listens on port 22 and logs in as root");
        let sshd = require("sshd");
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        keygen_with(&host_key, host_key_args, "");
        let mut keys = String::new();
        for k in authorized {
            keys.push_str(&std::fs::read_to_string(k).unwrap());
        }
        std::fs::write(dir.path().join("authorized_keys"), keys).unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "{extra}ListenAddress {address}\nPort 22\nHostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 100:30:200\nLogLevel ERROR\n",
                hk = host_key.display(),
                d = dir.path().display()
            ),
        )
        .unwrap();
        let s = Sshd {
            dir,
            address: address.to_string(),
            config,
        };
        let out = Command::new(sshd)
            .arg("-f")
            .arg(&s.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sshd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.wait_started();
        s
    }

    /// Waits until sshd answers on port 22 *and* its pid file holds a pid: the daemon writes
    /// the file after it binds, so a signal sent on "port open" alone can find an empty file
    /// (a CI run froze nothing that way).
    fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((self.address.as_str(), 22)).is_err()
            || self.pid().is_none()
        {
            assert!(
                Instant::now() < deadline,
                "sshd on {} did not start (or wrote no pid file)",
                self.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("sshd.pid"))
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| p.parse::<u32>().is_ok())
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid]).status();
        }
    }

    /// Replaces the host key (as a rebuilt host would have) and restarts.
    pub fn new_host_key(&self) {
        let hk = self.dir.path().join("host_ed25519");
        std::fs::remove_file(&hk).unwrap();
        std::fs::remove_file(hk.with_extension("pub")).ok();
        std::fs::remove_file(self.dir.path().join("host_ed25519.pub")).ok();
        keygen(&hk, "ed25519", "");
        self.stop();
        // A stale pid would satisfy `wait_started` before the new daemon writes its own.
        std::fs::remove_file(self.dir.path().join("sshd.pid")).ok();
        let out = Command::new(require("sshd"))
            .arg("-f")
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success());
        self.wait_started();
    }

    pub fn stop(&self) {
        self.signal("-CONT");
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect((self.address.as_str(), 22)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An ssh-agent on its own socket, killed on drop.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pid: String,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let out = Command::new(require("ssh-agent"))
            .arg("-a")
            .arg(&socket)
            .arg("-s")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(';')
            .find_map(|p| p.trim().strip_prefix("SSH_AGENT_PID="))
            .expect("ssh-agent prints its pid")
            .to_string();
        Agent { dir, socket, pid }
    }

    pub fn add(&self, key: &Path) {
        let out = Command::new(require("ssh-add"))
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}
