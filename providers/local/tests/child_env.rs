//! No command the local target runs (and so none of its long-lived sshd and dnsmasq) inherits
//! `ACURA_HA_BECOME_PASSWORD` or `ACURA_HA_SSH_KEY_PASSPHRASE` from the deploy side (issue 11, #4).

use acura_ha_local::cmd::{DEFAULT_TIMEOUT, SECRET_ENV, probe};

#[tokio::test]
async fn commands_run_without_the_become_password() {
    // SAFETY: the only test of this binary, before it starts any thread that reads the
    // environment.
    for v in SECRET_ENV {
        unsafe { std::env::set_var(v, "env-secret-41d2") };
    }
    let out = probe("test", "/usr/bin/env", [] as [&str; 0], DEFAULT_TIMEOUT)
        .await
        .expect("env runs");
    assert!(out.success());
    assert!(out.stdout.contains("PATH="), "{}", out.stdout);
    for v in SECRET_ENV {
        assert!(
            !out.stdout.contains(v),
            "{v} reached the child:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("env-secret-41d2"));
}
