//! Host keys from the cloud (issue 10, item 4): `console_host_keys` reads each server's console
//! log through Nova's `os-getConsoleOutput` action on the fake cloud and returns the fingerprints
//! of cloud-init's block, per host. Servers without a console (404), with a hypervisor that
//! cannot give one (501, scripted as a fault) or whose log holds no complete block are left out:
//! the bootstrap pins those on first use.

use std::collections::BTreeMap;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::wait::Pace;
use fake_openstack::{Config, FakeCloud, FaultAction, FaultRule};

#[derive(Default)]
struct Records(BTreeMap<String, Recorded>);

impl Journal for Records {
    fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
        self.0.insert(r.address.clone(), r);
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.0.remove(address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.0.get(address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.0.values().cloned().collect()
    }
}

const FP_1: &str = "SHA256:2n7WgYJ9q9ZdLl8Hq6CwGgZ3u8bQ1dJkqkK0l3xVtSk";
const FP_1_ECDSA: &str = "SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c";
const FP_LB: &str = "SHA256:fPq0bQ2Z7pQJ6cH9N0+3Jt8Xx2kRmZ1yG9c1w0mZl3E";

/// A first boot's console: kernel lines, cloud-init's block for `host`, more lines after it.
fn boot_log(host: &str, keys: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "[    0.000000] Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045)\n\
         [    4.211093] cloud-init[612]: Cloud-init v. 23.3.3 running 'init' at Mon, 07 Dec 2026 07:40:01 +0000.\n\
         ci-info: ++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++\n\
         <14>Dec  7 07:40:12 cloud-init: #############################################################\n\
         <14>Dec  7 07:40:12 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n",
    );
    for (fp, kind) in keys {
        s.push_str(&format!(
            "<14>Dec  7 07:40:12 cloud-init: 256 {fp} root@{host} ({kind})\n"
        ));
    }
    s.push_str(
        "<14>Dec  7 07:40:12 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n\
         <14>Dec  7 07:40:12 cloud-init: #############################################################\n",
    );
    for i in 0..50 {
        s.push_str(&format!(
            "[   {}.000000] systemd[1]: noise line {i}\n",
            20 + i
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn console_host_keys_come_from_each_servers_console_log() {
    let fake = FakeCloud::start(Config {
        page_size: Some(2),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clouds.yaml"), fake.clouds_yaml("fake")).unwrap();
    std::fs::write(
        dir.path().join("id.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2bmgO5vLp2Wq5l2B6Cq9a1PZt0W8S8pQ0bW3pH2mL con\n",
    )
    .unwrap();
    let home = dir.path().display().to_string();
    let env: BTreeMap<String, String> = [
        ("OS_CLIENT_CONFIG_FILE", format!("{home}/clouds.yaml")),
        ("HOME", home.clone()),
        ("PWD", home),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let provider = OpenStackProvider::new(dir.path().to_path_buf())
        .quiet(true)
        .pace(Pace::scaled(0.01))
        .env(env);
    let spec: ClusterSpec = toml::from_str(
        "[cluster]\nname = \"acura-con\"\n\
         [nodes]\ncount = 3\nhostname_prefix = \"con\"\nvolume_size_gb = 200\n\
         [load_balancer]\nkind = \"nginx\"\n\
         [access]\nadmin_cidrs = [\"10.1.0.0/16\"]\nssh_agent = true\n\
         [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
         network = \"acura-net\"\npublic_key_file = \"id.pub\"\nlb_flavor = \"m1.small\"\n",
    )
    .unwrap();
    assert!(spec.validate().is_empty(), "{:?}", spec.validate());

    let mut journal = Records::default();
    let inv = provider.provision(&spec, &mut journal).await.unwrap();
    let names: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    let lb = inv.lb.nginx_host.clone().expect("an NGINX host").name;

    // Nothing on any console yet: nothing vouched, nothing failed.
    let none = provider
        .console_host_keys(&spec, &inv, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap();
    assert!(none.fingerprints.is_empty(), "{none:?}");

    // node 1: two keys; node 2: a log still booting (no block yet); node 3: no console (404);
    // the NGINX host: its key.
    fake.set_console_log(
        &names[0],
        Some(&boot_log(
            &names[0],
            &[(FP_1_ECDSA, "ECDSA"), (FP_1, "ED25519")],
        )),
    );
    fake.set_console_log(
        &names[1],
        Some("[    0.000000] Linux version 5.15.0\n[    3.1] cloud-init[612]: running\n"),
    );
    fake.set_console_log(&lb, Some(&boot_log(&lb, &[(FP_LB, "ED25519")])));
    let keys = provider
        .console_host_keys(&spec, &inv, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap();
    let want: BTreeMap<String, Vec<String>> = [
        (
            names[0].clone(),
            vec![FP_1_ECDSA.to_string(), FP_1.to_string()],
        ),
        (lb.clone(), vec![FP_LB.to_string()]),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys.fingerprints, want);

    // A hypervisor that cannot give node 1's console (501) leaves it out; the others stay.
    let id = journal.0[&format!("instance[{}]", names[0])]
        .id
        .clone()
        .unwrap();
    fake.add_fault(FaultRule {
        method: Some("POST".into()),
        path: format!("/servers/{id}/action$"),
        body_contains: Some("os-getConsoleOutput".into()),
        skip: 0,
        times: None,
        action: FaultAction::Status {
            status: 501,
            retry_after: None,
            body: None,
        },
    });
    let keys = provider
        .console_host_keys(&spec, &inv, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap();
    assert_eq!(
        keys.fingerprints.keys().collect::<Vec<_>>(),
        [&lb],
        "{keys:?}"
    );
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());
}
