//! The SSH layer against a real OpenSSH server: login with a key file and through ssh-agent
//! (ed25519 and RSA with rsa-sha2; key files of every kind and unusual servers: ssh_compat.rs), host keys pinned on first contact and a changed key refused,
//! refused and hung hosts, command deadlines, streamed output, files written through stdin.

mod common;

use std::path::Path;
use std::time::Duration;

use acura_ha::bootstrap::ssh::{Credentials, Session, SshError, SshOptions, Stream, Target};
use common::sshd::{Agent, Sshd, keygen};

fn target(address: &str) -> Target {
    Target {
        name: "node-x".into(),
        address: address.into(),
        port: 22,
        user: "root".into(),
    }
}

fn opts(dir: &Path, key: Option<&Path>) -> SshOptions {
    SshOptions {
        known_hosts: dir.join("known_hosts"),
        credentials: Credentials {
            key_file: key.map(Path::to_path_buf),
            agent: false,
            agent_socket: None,
        },
        connect_timeout: Duration::from_secs(3),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_file_login_pins_the_host_key_and_runs_commands() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let sshd = Sshd::start("127.0.4.1", &[&key.with_extension("pub")]);
    let o = opts(keys.path(), Some(&key));

    let s = Session::connect(&target("127.0.4.1"), &o)
        .await
        .expect("login");
    let pinned = std::fs::read_to_string(&o.known_hosts).unwrap();
    assert!(
        pinned.trim_start().starts_with("127.0.4.1 ssh-ed25519 "),
        "{pinned}"
    );

    // Streamed output, both streams, exit status after EOF.
    let mut chunks = Vec::new();
    let out = s
        .exec(
            "echo out; echo err >&2; exit 3",
            None,
            Duration::from_secs(10),
            |stream, data| chunks.push((stream, data.to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    assert!(chunks.iter().any(|(st, _)| *st == Stream::Stderr));

    // A deadline ends a command that hangs.
    let e = s
        .run("sleep 30", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, SshError::CommandTimeout { .. }), "{e}");

    // Files go through stdin, atomically, with the mode asked for.
    let file = keys.path().join("remote.conf");
    acura_ha::bootstrap::sudo::Sudo::from(false)
        .write_file(
            &s,
            &file.display().to_string(),
            b"secret=1\n",
            0o600,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret=1\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The connection is reused: many commands, one session.
    for i in 0..5 {
        assert_eq!(
            s.run(&format!("echo {i}"), Duration::from_secs(5))
                .await
                .unwrap()
                .stdout_text(),
            format!("{i}\n")
        );
    }
    s.close().await;

    // A second login matches the pin.
    Session::connect(&target("127.0.4.1"), &o)
        .await
        .expect("login again");

    // The host is rebuilt with a new key: a hard error naming both fingerprints.
    sshd.new_host_key();
    let e = match Session::connect(&target("127.0.4.1"), &o).await {
        Err(e) => e,
        Ok(_) => panic!("a changed host key was accepted"),
    };
    match &e {
        SshError::HostKeyChanged {
            host,
            pinned,
            offered,
            ..
        } => {
            assert_eq!(host, "node-x");
            assert!(pinned.starts_with("SHA256:") && offered.starts_with("SHA256:"));
            assert_ne!(pinned, offered);
        }
        other => panic!("expected HostKeyChanged, got {other}"),
    }
    assert!(e.to_string().contains("HOST KEY CHANGED"));
    // The pin is unchanged.
    assert_eq!(std::fs::read_to_string(&o.known_hosts).unwrap(), pinned);
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_signs_ed25519_and_rsa_keys() {
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("id_rsa");
    keygen(&rsa, "rsa", "");
    // Only the RSA key is authorised: success proves an rsa-sha2 signature through the agent
    // (OpenSSH 9 refuses SHA-1 `ssh-rsa`).
    let _sshd = Sshd::start("127.0.4.2", &[&rsa.with_extension("pub")]);
    let agent = Agent::start();
    agent.add(&rsa);
    let mut o = opts(keys.path(), None);
    o.credentials.agent = true;
    o.credentials.agent_socket = Some(agent.socket.clone());
    let s = Session::connect(&target("127.0.4.2"), &o)
        .await
        .expect("RSA through the agent");
    assert_eq!(
        s.run("echo ok", Duration::from_secs(5))
            .await
            .unwrap()
            .stdout_text(),
        "ok\n"
    );

    // (Passphrase-protected key files: tests/ssh_compat.rs, in a child process without a
    // terminal, so that a `cargo test` started on one is not asked for a passphrase.)

    // A key the server does not know: login refused, naming what was tried.
    let other = keys.path().join("id_other");
    keygen(&other, "ed25519", "");
    let o3 = opts(keys.path(), Some(&other));
    match Session::connect(&target("127.0.4.2"), &o3).await {
        Err(SshError::AuthFailed { user, tried, .. }) => {
            assert_eq!(user, "root");
            assert!(tried.contains("id_other"), "{tried}");
        }
        Err(e) => panic!("expected AuthFailed, got {e}"),
        Ok(_) => panic!("an unknown key logged in"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_and_hung_hosts_fail_clearly() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let o = opts(keys.path(), Some(&key));
    // Nothing listens: refused.
    match Session::connect(&target("127.0.4.99"), &o).await {
        Err(SshError::Refused { host, port, .. }) => {
            assert_eq!((host.as_str(), port), ("node-x", 22))
        }
        Err(e) => panic!("expected Refused, got {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
    // A frozen sshd accepts TCP but never speaks: the connect deadline ends it.
    let sshd = Sshd::start("127.0.4.3", &[&key.with_extension("pub")]);
    sshd.signal("-STOP");
    let started = std::time::Instant::now();
    let r = Session::connect(&target("127.0.4.3"), &o).await;
    sshd.signal("-CONT");
    match r {
        Err(SshError::Timeout { secs, .. }) => assert_eq!(secs, 3.0),
        Err(e) => panic!("expected Timeout, got {e}"),
        Ok(_) => panic!("a frozen host answered"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}
