//! The LB host's NGINX config is replaced only by a config the real `nginx -t` accepts: a bad
//! one leaves the running config in place (issue 11, #13). Through a real sshd, as the
//! bootstrap reaches the LB host.

mod common;

use std::path::Path;
use std::time::Duration;

use acura_ha::bootstrap::lbhost::install_config;
use acura_ha::bootstrap::ssh::{Credentials, Session, SshOptions, Target};
use acura_ha_nginx::{NginxOptions, render};
use common::require;
use common::sshd::{Sshd, keygen};

#[tokio::test(flavor = "multi_thread")]
async fn a_config_nginx_refuses_leaves_the_old_one_in_place() {
    require("nginx");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    keygen(&key, "ed25519", "");
    let _sshd = Sshd::start("127.0.4.13", &[&key.with_extension("pub")]);
    let opts = SshOptions {
        known_hosts: keys.path().join("known_hosts"),
        credentials: Credentials {
            key_file: Some(key.clone()),
            agent: false,
            agent_socket: None,
        },
        connect_timeout: Duration::from_secs(3),
    };
    let target = Target {
        name: "lb".into(),
        address: "127.0.4.13".into(),
        port: 22,
        user: "root".into(),
    };
    let session = Session::connect(&target, &opts).await.expect("login");

    // A directory with a space, as NGINX's own would be somewhere else.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc nginx");
    std::fs::create_dir(&etc).unwrap();
    let conf_path = etc.join("nginx.conf");
    let path = conf_path.to_str().unwrap();
    let nginx_opts = NginxOptions {
        pid_file: dir.path().join("nginx.pid").display().to_string(),
        error_log: dir.path().join("error.log").display().to_string(),
        ..NginxOptions::default()
    };
    let nodes = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let good = render("demo", &nodes(&["10.0.0.11", "10.0.0.12"]), &nginx_opts).unwrap();
    install_config(&session, path, &good)
        .await
        .unwrap_or_else(|e| panic!("a good config is installed: {e}"));
    assert_eq!(std::fs::read_to_string(&conf_path).unwrap(), good);

    // A config NGINX refuses (an unknown directive) does not replace it.
    let bad = good.replace(
        "worker_processes auto;",
        "worker_processes auto;\nbogus_directive on;",
    );
    let err = install_config(&session, path, &bad)
        .await
        .expect_err("nginx -t refuses it");
    let msg = err.to_string();
    assert!(msg.contains("bogus_directive"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&conf_path).unwrap(),
        good,
        "the refused config replaced the old one"
    );
    let left: Vec<_> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["nginx.conf"], "nothing else is left next to it");

    // A good new config does replace it.
    let newer = render("demo", &nodes(&["10.0.0.21"]), &nginx_opts).unwrap();
    install_config(&session, path, &newer).await.unwrap();
    assert_eq!(std::fs::read_to_string(&conf_path).unwrap(), newer);
    assert!(!Path::new(path).with_extension("conf.acura-ha-new").exists());
    session.close().await;
}
