//! How the provider meets clouds that differ from the newest devstack (issue 13 items 4, 5, 9;
//! issue 15 item 7), against the fake cloud on 127.0.0.1 with pages of 2: a Neutron without
//! the tag extensions, services too old for the API versions the provider needs, the
//! load balancer's own view of its members, and credentials that are refused or name no cloud.

use std::collections::BTreeMap;
use std::path::Path;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::wait::Pace;
use fake_openstack::{CloudTraits, Config, FakeCloud};

#[derive(Default)]
struct Mem(Vec<Recorded>);

impl Journal for Mem {
    fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
        match self.0.iter_mut().find(|x| x.address == r.address) {
            Some(x) => *x = r,
            None => self.0.push(r),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.0.retain(|x| x.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.0.iter().find(|x| x.address == address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.0.clone()
    }
}

struct Lab {
    cloud: FakeCloud,
    dir: tempfile::TempDir,
}

const GROUP: &str = "acura-ha-acura-os";

impl Lab {
    /// Lists come 2 items a page, as in the other provider tests.
    fn with(traits: CloudTraits) -> Lab {
        let cloud = FakeCloud::start(Config {
            page_size: Some(2),
            cloud: traits,
            ..Config::default()
        });
        assert!(cloud.base_url().starts_with("http://127.0.0.1:"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), cloud.clouds_yaml("fake")).unwrap();
        std::fs::write(
            dir.path().join("id.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2bmgO5vLp2Wq5l2B6Cq9a1PZt0W8S8pQ0bW3pH2mL test\n",
        )
        .unwrap();
        Lab { cloud, dir }
    }

    fn provider_with(&self, extra_env: &[(&str, &str)]) -> OpenStackProvider {
        let mut env = BTreeMap::new();
        env.insert(
            "OS_CLIENT_CONFIG_FILE".to_string(),
            self.dir.path().join("clouds.yaml").display().to_string(),
        );
        env.insert("HOME".into(), self.dir.path().display().to_string());
        env.insert("PWD".into(), self.dir.path().display().to_string());
        for (k, v) in extra_env {
            env.insert(k.to_string(), v.to_string());
        }
        OpenStackProvider::new(self.dir.path().to_path_buf())
            .quiet(true)
            .pace(Pace::scaled(0.01))
            .env(env)
    }

    fn provider(&self) -> OpenStackProvider {
        self.provider_with(&[])
    }

    /// `cloud_line`: the `[openstack] cloud = ...` line, or empty to leave it to `OS_CLOUD`.
    fn spec_with(&self, lb: &str, cloud_line: &str) -> ClusterSpec {
        let text = format!(
            r#"
[cluster]
name = "acura-os"
[nodes]
count = 3
hostname_prefix = "acura"
volume_size_gb = 200
[load_balancer]
kind = "{lb}"
[access]
admin_cidrs = ["198.51.100.7/32"]
ssh_agent = true
[openstack]
{cloud_line}
flavor = "m1.xlarge"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "id.pub"
{}
"#,
            if lb == "nginx" {
                "lb_flavor = \"m1.small\""
            } else {
                ""
            }
        );
        let spec: ClusterSpec = toml::from_str(&text).unwrap();
        assert!(spec.validate().is_empty(), "{:?}", spec.validate());
        spec
    }

    fn spec(&self) -> ClusterSpec {
        self.spec_with("cloud", "cloud = \"fake\"")
    }

    fn assert_clean(&self) {
        assert!(
            self.cloud.unhandled().is_empty(),
            "{:?}",
            self.cloud.unhandled()
        );
    }
}

fn without(ext: &[&str]) -> CloudTraits {
    CloudTraits {
        neutron_without_extensions: ext.iter().map(|e| e.to_string()).collect(),
        ..CloudTraits::default()
    }
}

/// Provision, provision again (adopting: nothing mutated), destroy back to the start.
async fn round_trip(lab: &Lab) {
    let before = lab.cloud.inventory();
    let p = lab.provider();
    let spec = lab.spec();
    let mut j = Mem::default();
    p.provision(&spec, &mut j).await.expect("provision");
    lab.assert_clean();
    assert_eq!(
        lab.cloud.inventory().names("security_groups"),
        vec![GROUP, "default"]
    );
    lab.cloud.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision again");
    let st = lab.cloud.stats();
    assert_eq!(st.mutating, 0, "{:?}", st.per_route);
    p.destroy(&spec, &mut j).await.expect("destroy");
    assert_eq!(lab.cloud.inventory(), before);
    lab.assert_clean();
}

#[tokio::test]
async fn neutron_with_tag_creation_tags_in_the_create_body() {
    let lab = Lab::with(CloudTraits::default());
    let p = lab.provider();
    let mut j = Mem::default();
    p.provision(&lab.spec(), &mut j).await.expect("provision");
    let tags = lab.cloud.security_group_tags(GROUP).expect("group");
    assert!(
        tags.contains(&"acura-ha-cluster=acura-os".to_string()),
        "{tags:?}"
    );
    let st = lab.cloud.stats();
    assert!(
        !st.per_route.keys().any(|r| r.contains("/tags")),
        "no separate tag call: {:?}",
        st.per_route
    );
    // Nor a read of the extension list first: the creates carry their tags (issue 12).
    assert!(
        !st.per_route.contains_key("GET /network/v2.0/extensions"),
        "{:?}",
        st.per_route
    );
    p.destroy(&lab.spec(), &mut j).await.expect("destroy");
}

/// A Neutron without `tag-creation` refuses `tags` in a create body (400 "Unrecognized
/// attribute(s) 'tags'"): the group is created without them and tagged right after.
#[tokio::test]
async fn neutron_without_tag_creation_tags_afterwards() {
    let lab = Lab::with(without(&["tag-creation"]));
    let p = lab.provider();
    let mut j = Mem::default();
    p.provision(&lab.spec(), &mut j).await.expect("provision");
    let tags = lab.cloud.security_group_tags(GROUP).expect("group");
    assert!(
        tags.contains(&"acura-ha-cluster=acura-os".to_string()),
        "{tags:?}"
    );
    let st = lab.cloud.stats();
    assert_eq!(
        st.per_route
            .get("PUT /network/v2.0/security-groups/{id}/tags")
            .copied(),
        Some(1),
        "{:?}",
        st.per_route
    );
    // The extension list is read once per session, not per create: after the first create's
    // 400, which is sent again without tags; the ports after it go without them at once.
    assert_eq!(
        st.per_route.get("GET /network/v2.0/extensions").copied(),
        Some(1),
        "{:?}",
        st.per_route
    );
    assert_eq!(
        st.per_route
            .get("POST /network/v2.0/security-groups")
            .copied(),
        Some(2),
        "{:?}",
        st.per_route
    );
    assert_eq!(
        st.per_route.get("POST /network/v2.0/ports").copied(),
        Some(3),
        "{:?}",
        st.per_route
    );
    p.destroy(&lab.spec(), &mut j).await.expect("destroy");
    round_trip(&lab).await;
}

/// No tag extension at all: the group is known by its name (created once, adopted after,
/// found by `discover` and deleted by `destroy`).
#[tokio::test]
async fn neutron_without_tags_relies_on_names() {
    let lab = Lab::with(without(&["standard-attr-tag"]));
    round_trip(&lab).await;
    // Lost state: discover finds the untagged group by its name.
    let p = lab.provider();
    let spec = lab.spec();
    let mut j = Mem::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let found = p.discover(&spec).await.expect("discover");
    assert!(
        found.iter().any(|r| r.address == "security_group"),
        "{found:?}"
    );
    let mut lost = Mem::default();
    p.destroy(&spec, &mut lost).await.expect("destroy");
    assert_eq!(lab.cloud.security_group_tags(GROUP), None);
    lab.assert_clean();
}

async fn too_old(traits: CloudTraits, lb: &str) -> String {
    let lab = Lab::with(traits);
    let before = lab.cloud.inventory();
    let p = lab.provider();
    let mut j = Mem::default();
    lab.cloud.reset_stats();
    let err = p
        .provision(&lab.spec_with(lb, "cloud = \"fake\""), &mut j)
        .await
        .expect_err("too old")
        .to_string();
    assert_eq!(lab.cloud.stats().mutating, 0, "nothing created: {err}");
    assert_eq!(lab.cloud.inventory(), before);
    assert!(j.0.is_empty(), "{:?}", j.0);
    eprintln!("{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    lab.assert_clean();
    err
}

#[tokio::test]
async fn a_nova_too_old_is_named_before_anything_is_created() {
    let err = too_old(
        CloudTraits {
            compute_max_version: "2.60".into(),
            ..CloudTraits::default()
        },
        "cloud",
    )
    .await;
    assert!(
        err.contains("compute (Nova)") && err.contains("2.60") && err.contains("2.64"),
        "{err}"
    );
}

/// Cinder's first call is the quota read of the preflight: its 406 is the version check, not a
/// quota left unchecked (the cluster would be built and `down` stop at the volumes).
#[tokio::test]
async fn a_cinder_too_old_is_named_before_anything_is_created() {
    let err = too_old(
        CloudTraits {
            volume_max_version: "2.9".into(),
            ..CloudTraits::default()
        },
        "cloud",
    )
    .await;
    assert!(
        err.contains("block-storage (Cinder)") && err.contains("2.9") && err.contains("3.0"),
        "{err}"
    );
}

#[tokio::test]
async fn an_octavia_too_old_is_named_only_when_it_is_used() {
    let old = CloudTraits {
        load_balancer_max_version: "2.4".into(),
        ..CloudTraits::default()
    };
    let err = too_old(old.clone(), "cloud").await;
    assert!(
        err.contains("load-balancer (Octavia)") && err.contains("2.4") && err.contains("2.5"),
        "{err}"
    );
    // With NGINX the cluster needs no Octavia: the same cloud is fine.
    let lab = Lab::with(old);
    let p = lab.provider();
    let spec = lab.spec_with("nginx", "cloud = \"fake\"");
    let mut j = Mem::default();
    p.provision(&spec, &mut j)
        .await
        .expect("provision with NGINX");
    assert_eq!(
        p.lb_health(&spec, &acura_ha_api::provider::Journal::all(&j))
            .await
            .expect("lb health"),
        None
    );
    p.destroy(&spec, &mut j).await.expect("destroy");
}

/// The fake's Nova answers 406 to a microversion above its maximum, as Nova does: that answer
/// to the first compute call (a lookup) is the check, so no version document is read first
/// (issue 12: one request and one round trip less before anything is made). Octavia, which
/// takes no microversion, still has its document read.
#[tokio::test]
async fn the_first_compute_call_is_the_version_check() {
    let lab = Lab::with(CloudTraits {
        compute_max_version: "2.60".into(),
        ..CloudTraits::default()
    });
    let p = lab.provider();
    let mut j = Mem::default();
    let err = p
        .provision(&lab.spec(), &mut j)
        .await
        .expect_err("too old")
        .to_string();
    assert!(err.contains("offers at most 2.60"), "{err}");
    let st = lab.cloud.stats();
    assert_eq!(st.mutating, 0, "{:?}", st.per_route);
    for doc in ["GET /compute/v2.1/", "GET /volume/v3/"] {
        assert!(
            !st.per_route.contains_key(doc),
            "{doc} read: {:?}",
            st.per_route
        );
    }
    assert!(
        st.per_route.contains_key("GET /load-balancer/"),
        "{:?}",
        st.per_route
    );
}

/// `lb_health` reads Octavia's status tree: every listener of the guide with the three nodes,
/// named as the journal recorded them; a member the health monitor marks ERROR is unhealthy.
#[tokio::test]
async fn lb_health_names_each_node_and_its_health() {
    let lab = Lab::with(CloudTraits::default());
    let p = lab.provider();
    let spec = lab.spec();
    let mut j = Mem::default();
    let inv = p.provision(&spec, &mut j).await.expect("provision");
    let h = p
        .lb_health(&spec, &acura_ha_api::provider::Journal::all(&j))
        .await
        .expect("lb health")
        .expect("an Octavia load balancer");
    assert_eq!(h.listeners.len(), 6, "{h:?}");
    assert!(h.healthy(), "{h:?}");
    assert_eq!(h.state, "active/online");
    let names: Vec<String> = inv.nodes.iter().map(|n| n.name.clone()).collect();
    for l in &h.listeners {
        let t: Vec<String> = l.targets.iter().map(|t| t.target.clone()).collect();
        assert_eq!(t, names, "{l:?}");
    }
    assert!(
        h.listeners
            .iter()
            .any(|l| l.protocol == "UDP" && l.port == 12201)
    );

    let sick = &inv.nodes[1];
    lab.cloud.set_member_status(&sick.address, Some("ERROR"));
    let h = health_now(&p, &spec, &j).await;
    assert!(!h.healthy(), "{h:?}");
    assert_eq!(h.state, "active/degraded");
    for l in &h.listeners {
        for t in &l.targets {
            if t.target == sick.name {
                assert_eq!(t.state, "unhealthy", "{t:?}");
                assert!(t.reason.as_deref().unwrap_or("").contains("ERROR"), "{t:?}");
            } else {
                assert!(t.healthy(), "{t:?}");
            }
        }
    }
    lab.cloud.set_member_status(&sick.address, None);
    assert!(health_now(&p, &spec, &j).await.healthy());
    p.destroy(&spec, &mut j).await.expect("destroy");
    // Nothing recorded: nothing to ask.
    assert_eq!(
        p.lb_health(&spec, &acura_ha_api::provider::Journal::all(&j))
            .await
            .expect("lb health"),
        None
    );
    lab.assert_clean();
}

async fn health_now(
    p: &OpenStackProvider,
    spec: &ClusterSpec,
    j: &Mem,
) -> acura_ha_api::model::LbHealth {
    p.lb_health(spec, &acura_ha_api::provider::Journal::all(j))
        .await
        .expect("lb health")
        .expect("a load balancer")
}

fn write_clouds(dir: &Path, text: &str) {
    std::fs::write(dir.join("clouds.yaml"), text).unwrap();
}

/// A wrong password: one line naming the file, the setting and the fix; nothing created.
#[tokio::test]
async fn a_refused_password_names_the_file_and_the_fix() {
    let lab = Lab::with(CloudTraits::default());
    let yaml = lab
        .cloud
        .clouds_yaml("fake")
        .replace("password: \"secret\"", "password: \"wrong\"");
    write_clouds(lab.dir.path(), &yaml);
    let p = lab.provider();
    let mut j = Mem::default();
    let err = p
        .provision(&lab.spec(), &mut j)
        .await
        .expect_err("401")
        .to_string();
    eprintln!("{err}");
    let file = lab.dir.path().join("clouds.yaml").display().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains(&file), "{err}");
    assert!(err.contains("auth.password"), "{err}");
    assert!(err.contains("export OS_CLOUD="), "{err}");
    assert!(!err.contains("wrong"), "no secret in the message: {err}");
    assert_eq!(lab.cloud.stats().mutating, 0);
    assert!(j.0.is_empty());
}

#[tokio::test]
async fn a_refused_application_credential_says_how_to_make_one() {
    let lab = Lab::with(CloudTraits::default());
    let yaml = lab
        .cloud
        .clouds_yaml_app_credential("fake")
        .replace("appcred-secret", "expired-secret");
    write_clouds(lab.dir.path(), &yaml);
    let err = lab
        .provider()
        .provision(&lab.spec(), &mut Mem::default())
        .await
        .expect_err("401")
        .to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains("application credential create") && err.contains("clouds.yaml"),
        "{err}"
    );
    assert!(!err.contains("expired-secret"), "{err}");
    assert_eq!(lab.cloud.stats().mutating, 0);
}

/// `OS_CLOUD` names a cloud the file does not have: where the tool looked, what the file has,
/// and `export OS_CLOUD=...`; the cluster file's own `cloud` says to change that line instead.
#[tokio::test]
async fn an_unknown_cloud_names_the_paths_and_the_fix() {
    let lab = Lab::with(CloudTraits::default());
    let p = lab.provider_with(&[("OS_CLOUD", "prod")]);
    let err = p
        .provision(&lab.spec_with("cloud", ""), &mut Mem::default())
        .await
        .expect_err("unknown cloud")
        .to_string();
    eprintln!("{err}");
    let file = lab.dir.path().join("clouds.yaml").display().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains("\"prod\"") && err.contains("OS_CLOUD"),
        "{err}"
    );
    assert!(err.contains(&file), "{err}");
    assert!(err.contains(".config/openstack/clouds.yaml"), "{err}");
    assert!(err.contains("/etc/openstack/clouds.yaml"), "{err}");
    assert!(err.contains("export OS_CLOUD=fake"), "{err}");

    let err = lab
        .provider()
        .provision(
            &lab.spec_with("cloud", "cloud = \"prod\""),
            &mut Mem::default(),
        )
        .await
        .expect_err("unknown cloud")
        .to_string();
    assert!(
        err.contains("[openstack] cloud = \"fake\"") && err.contains("cluster file"),
        "{err}"
    );
    // No request reached the cloud at all.
    assert_eq!(lab.cloud.stats().total, 0);
}

/// `OS_REGION_NAME` names a region the catalog does not have: one line naming the region, the
/// regions the catalog has (and their interfaces), where the region is set and the fix; only the
/// token was asked for, nothing else reached the cloud.
#[tokio::test]
async fn a_region_not_in_the_catalog_names_the_regions_it_has_and_the_fix() {
    let lab = Lab::with(CloudTraits::default());
    let p = lab.provider_with(&[("OS_REGION_NAME", "RegionNine")]);
    let err = p
        .provision(&lab.spec(), &mut Mem::default())
        .await
        .expect_err("no endpoint in RegionNine")
        .to_string();
    eprintln!("{err}");
    let file = lab.dir.path().join("clouds.yaml").display().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains("no compute (Nova) endpoint for region \"RegionNine\" (interface public)"),
        "{err}"
    );
    assert!(
        err.contains("its compute endpoints are in: RegionOne (internal, public)"),
        "{err}"
    );
    assert!(
        err.contains(&file) && err.contains("OS_REGION_NAME"),
        "{err}"
    );
    assert!(err.contains("`export OS_REGION_NAME=RegionOne`"), "{err}");
    let stats = lab.cloud.stats();
    assert_eq!(stats.mutating, 0);
    assert_eq!(stats.total, 1, "the token only: {stats:?}");

    // A known region with an interface it does not have says so instead.
    let p = lab.provider_with(&[("OS_INTERFACE", "admin")]);
    let err = p
        .provision(&lab.spec(), &mut Mem::default())
        .await
        .expect_err("no admin endpoint")
        .to_string();
    assert!(
        err.contains("no compute (Nova) endpoint for interface \"admin\" in region \"RegionOne\"")
            && err.contains("OS_INTERFACE"),
        "{err}"
    );
    assert_eq!(lab.cloud.stats().mutating, 0);
}
