//! Host keys from the cloud (issue 10, item 4) on AWS, against a real moto_server behind the fault
//! proxy: `console_host_keys` calls GetConsoleOutput per instance of the journal, decodes EC2's
//! base64 and returns cloud-init's fingerprints per host. moto's own answer (a canned kernel log
//! without the block) gives nothing; a log the proxy serves for an instance gives its keys; a
//! refused call (UnauthorizedOperation) leaves the host out without failing.
//! `cargo test -p acura-ha-aws --test console`.

mod common;
mod driver;

use std::path::PathBuf;

use acura_ha_api::provider::Provider;
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::json;

const FP_1: &str = "SHA256:2n7WgYJ9q9ZdLl8Hq6CwGgZ3u8bQ1dJkqkK0l3xVtSk";
const FP_1_RSA: &str = "SHA256:fPq0bQ2Z7pQJ6cH9N0+3Jt8Xx2kRmZ1yG9c1w0mZl3E";
const FP_3: &str = "SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c";

/// An Ubuntu first boot as EC2's serial console holds it (CRLF, cloud-init's syslog prefix).
fn boot_log(host: &str, keys: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        "[    0.000000] Linux version 6.8.0-1012-aws (buildd@lcy02-amd64-068)\r\n\
         [    5.912345] cloud-init[611]: Cloud-init v. 24.1.3 running 'modules:final'\r\n\
         <14>Dec  7 07:40:12 ec2: #############################################################\r\n\
         <14>Dec  7 07:40:12 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n",
    );
    for (bits, fp, kind) in keys {
        s.push_str(&format!(
            "<14>Dec  7 07:40:12 ec2: {bits} {fp} root@{host} ({kind})\r\n"
        ));
    }
    s.push_str(
        "<14>Dec  7 07:40:12 ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n\
         <14>Dec  7 07:40:12 ec2: #############################################################\r\n\
         \r\nUbuntu 24.04 LTS ip-10-0-1-23 ttyS0\r\n\r\nip-10-0-1-23 login: ",
    );
    s
}

/// The proxy answers GetConsoleOutput for `instance` with `output` (`None`: moto answers).
fn serve_console(proxy: &Proxy, instance: &str, output: Option<&str>) {
    let body = json!({ "instance_id": instance, "output": output }).to_string();
    let url = format!("{}/__proxy/console", proxy.url());
    let r = common::http(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "fault proxy console: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_host_keys_come_from_get_console_output() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    point_sdk_at(&proxy.url());
    let dir: PathBuf =
        std::env::temp_dir().join(format!("acura-ha-aws-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = spec(&dir, "console");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();
    let inv = provider.provision(&spec, &mut journal).await.unwrap();
    let names: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["acura-1", "acura-2", "acura-3"]);
    let id = |n: &str| journal.id(&format!("instance[{n}]"));

    // moto's canned console (a 2006 kernel log, no cloud-init): nothing vouched, no failure.
    proxy.reset_stats();
    let none = provider
        .console_host_keys(&spec, &inv, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap();
    assert!(none.fingerprints.is_empty(), "{none:?}");
    assert_eq!(
        proxy.stats()["by_action"]["GetConsoleOutput"],
        3,
        "one call per instance: {:#}",
        proxy.stats()
    );

    // acura-1 and acura-3 have booted; acura-2's call is refused once (a policy without
    // ec2:GetConsoleOutput), then its log has no key lines: it is left out both times, and
    // the bootstrap pins it on first use.
    serve_console(
        &proxy,
        &id("acura-1"),
        Some(&boot_log(
            "acura-1",
            &[("256", FP_1, "ED25519"), ("3072", FP_1_RSA, "RSA")],
        )),
    );
    serve_console(
        &proxy,
        &id("acura-3"),
        Some(&boot_log("acura-3", &[("256", FP_3, "ECDSA")])),
    );
    serve_console(
        &proxy,
        &id("acura-2"),
        Some(&boot_log("acura-2", &[("256", FP_3, "ED25519")])),
    );
    proxy.set_rules(json!([{
        "action": "GetConsoleOutput",
        "fault": "UnauthorizedOperation",
        "status": 403,
        "times": 2,
    }]));
    // The refusal is aimed at acura-2 by asking for it alone: refused with `Latest`, and again
    // without it (as a Xen instance refusing `Latest` is asked).
    let only_2 = acura_ha_api::model::Inventory {
        nodes: vec![inv.nodes[1].clone()],
        lb: inv.lb.clone(),
    };
    let refused = provider
        .console_host_keys(
            &spec,
            &only_2,
            &acura_ha_api::provider::Journal::all(&journal),
        )
        .await
        .unwrap();
    assert!(refused.fingerprints.is_empty(), "{refused:?}");
    assert_eq!(
        proxy.stats()["faults_by_action"]["GetConsoleOutput"],
        2,
        "{:#}",
        proxy.stats()
    );
    // Unset falls back to moto's canned log; then a block with no key lines.
    serve_console(&proxy, &id("acura-2"), None);
    serve_console(&proxy, &id("acura-2"), Some(&boot_log("acura-2", &[])));
    let keys = provider
        .console_host_keys(&spec, &inv, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap();
    assert_eq!(keys.fingerprints.len(), 2, "{keys:?}");
    assert_eq!(keys.fingerprints["acura-1"], [FP_1, FP_1_RSA]);
    assert_eq!(keys.fingerprints["acura-3"], [FP_3]);
}
