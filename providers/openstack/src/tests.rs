//! Unit tests: credential resolution, request bodies, and parsing of the OpenStack projects'
//! own sample bodies (tests/fixtures, copied from /work/shared/openstack-api).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::client::{auth_body, parse_error, pick_endpoint};
use crate::config::{ConfigError, Credentials, Overrides, resolve};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn env(dir: &std::path::Path, vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("HOME".into(), dir.join("home").display().to_string());
    m.insert("PWD".into(), dir.join("cwd").display().to_string());
    m
}

const CLOUDS: &str = r#"
clouds:
  mycloud:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: alice
      password: s3cret-pw
      project_name: acura
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionTwo
    interface: internal
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example:5000
      application_credential_id: abc123
      application_credential_secret: app-s3cret
    regions:
      - RegionOne
"#;

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn clouds_yaml_from_os_client_config_file() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("elsewhere/clouds.yaml");
    write(&f, CLOUDS);
    let e = env(d.path(), &[("OS_CLIENT_CONFIG_FILE", f.to_str().unwrap())]);
    let ov = Overrides {
        cloud: Some("mycloud".into()),
        ..Default::default()
    };
    let c = resolve(&ov, &e).unwrap();
    assert_eq!(c.auth_url, "https://keystone.example:5000/v3");
    assert_eq!(c.region.as_deref(), Some("RegionTwo"));
    assert_eq!(c.interface, "internal");
    assert!(c.source.contains("mycloud") && c.source.contains("elsewhere"));
    match &c.credentials {
        Credentials::Password {
            user,
            password,
            project,
        } => {
            assert_eq!(user.name.as_deref(), Some("alice"));
            assert_eq!(password.expose(), "s3cret-pw");
            assert_eq!(project.name.as_deref(), Some("acura"));
            assert_eq!(project.domain_name.as_deref(), Some("Default"));
        }
        other => panic!("{other:?}"),
    }
    // Secrets never in Debug output.
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cret-pw"), "{dbg}");
    assert!(dbg.contains("***"));
}

#[test]
fn clouds_yaml_search_order_cwd_then_home_then_os_cloud() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("home/.config/openstack/clouds.yaml"), CLOUDS);
    let e = env(d.path(), &[("OS_CLOUD", "appcred")]);
    let c = resolve(&Overrides::default(), &e).unwrap();
    assert!(c.source.contains("home/.config/openstack"), "{}", c.source);
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    assert_eq!(c.interface, "public");
    assert!(matches!(
        c.credentials,
        Credentials::ApplicationCredential { ref id, .. } if id.as_deref() == Some("abc123")
    ));
    // ./clouds.yaml comes before ~/.config.
    write(
        &d.path().join("cwd/clouds.yaml"),
        "clouds:\n  appcred:\n    auth:\n      auth_url: http://cwd.example/v3\n      application_credential_id: x\n      application_credential_secret: y\n",
    );
    let c = resolve(&Overrides::default(), &e).unwrap();
    assert_eq!(c.auth_url, "http://cwd.example/v3");
    // The cluster file's cloud and region win over OS_CLOUD and the entry.
    let ov = Overrides {
        cloud: Some("appcred".into()),
        region: Some("RegionNine".into()),
        ..Default::default()
    };
    assert_eq!(
        resolve(&ov, &e).unwrap().region.as_deref(),
        Some("RegionNine")
    );
}

#[test]
fn secure_yaml_is_merged() {
    let d = tempfile::tempdir().unwrap();
    write(
        &d.path().join("cwd/clouds.yaml"),
        "clouds:\n  c:\n    auth:\n      auth_url: http://k/v3\n      username: bob\n      project_id: p1\n",
    );
    write(
        &d.path().join("cwd/secure.yaml"),
        "clouds:\n  c:\n    auth:\n      password: from-secure\n",
    );
    let e = env(d.path(), &[("OS_CLOUD", "c")]);
    match resolve(&Overrides::default(), &e).unwrap().credentials {
        Credentials::Password {
            password, project, ..
        } => {
            assert_eq!(password.expose(), "from-secure");
            assert_eq!(project.id.as_deref(), Some("p1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_cloud_names_the_files_searched() {
    let d = tempfile::tempdir().unwrap();
    let e = env(d.path(), &[]);
    let ov = Overrides {
        cloud: Some("nope".into()),
        ..Default::default()
    };
    let ConfigError(msg) = resolve(&ov, &e).unwrap_err();
    assert!(msg.contains("nope"), "{msg}");
    assert!(msg.contains("cwd/clouds.yaml"), "{msg}");
    assert!(msg.contains(".config/openstack/clouds.yaml"), "{msg}");
    assert!(msg.contains("/etc/openstack/clouds.yaml"), "{msg}");
    // An entry not in the file names the file and what it has.
    write(&d.path().join("cwd/clouds.yaml"), CLOUDS);
    let ConfigError(msg) = resolve(&ov, &e).unwrap_err();
    assert!(msg.contains("mycloud") && msg.contains("appcred"), "{msg}");
    // Nothing at all: says what to set.
    let ConfigError(msg) = resolve(&Overrides::default(), &env(d.path(), &[])).unwrap_err();
    assert!(
        msg.contains("OS_AUTH_URL") && msg.contains("OS_CLOUD"),
        "{msg}"
    );
}

#[test]
fn os_env_password_and_app_credentials() {
    let d = tempfile::tempdir().unwrap();
    let e = env(
        d.path(),
        &[
            ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw-env"),
            ("OS_PROJECT_NAME", "admin"),
            ("OS_USER_DOMAIN_ID", "default"),
            ("OS_PROJECT_DOMAIN_ID", "default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_INTERFACE", "internalURL"),
            ("OS_CACERT", "/tmp/ca.pem"),
        ],
    );
    let c = resolve(&Overrides::default(), &e).unwrap();
    assert_eq!(c.source, "the OS_* environment variables");
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    assert_eq!(c.interface, "internal");
    assert_eq!(
        c.cacert.as_deref(),
        Some(std::path::Path::new("/tmp/ca.pem"))
    );
    let body = auth_body(&c.credentials);
    assert_eq!(
        body["auth"]["identity"]["password"]["user"]["name"],
        "admin"
    );
    assert_eq!(
        body["auth"]["identity"]["password"]["user"]["domain"]["id"],
        "default"
    );
    assert_eq!(body["auth"]["scope"]["project"]["name"], "admin");
    assert!(!format!("{c:?}").contains("pw-env"));

    let e = env(
        d.path(),
        &[
            ("OS_AUTH_URL", "http://127.0.0.1:5000"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "monitoring"),
            ("OS_USER_ID", "423f19a4ac1e4f48bbb4180756e6eb6c"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "rEaqvJka48mpv"),
        ],
    );
    let c = resolve(&Overrides::default(), &e).unwrap();
    // The same shape as Keystone's own sample.
    assert_eq!(
        auth_body(&c.credentials),
        fixture("auth-application-credential-name-req.json")
    );
    let e = env(
        d.path(),
        &[
            ("OS_AUTH_URL", "http://k"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ],
    );
    assert!(resolve(&Overrides::default(), &e).is_err());
}

#[test]
fn password_body_matches_keystone_sample_shape() {
    let c = Credentials::Password {
        user: crate::config::Named {
            id: Some("ee4dfb6e5540447cb3741905149d9b6e".into()),
            ..Default::default()
        },
        password: crate::config::Secret("devstacker".into()),
        project: crate::config::Named {
            name: Some("admin".into()),
            domain_id: Some("default".into()),
            ..Default::default()
        },
    };
    assert_eq!(
        auth_body(&c),
        fixture("auth-password-project-name-req.json")
    );
}

#[test]
fn endpoints_from_the_catalog() {
    let t = fixture("auth-password-project-scoped-multiservice-catalog-resp.json");
    let cat = &t["token"]["catalog"];
    let compute = pick_endpoint(cat, &["compute"], Some("RegionOne"), "public").unwrap();
    assert!(compute.contains("8774"), "{compute}");
    assert!(pick_endpoint(cat, &["compute"], Some("Elsewhere"), "public").is_none());
    let vol = pick_endpoint(
        cat,
        &["block-storage", "volumev3", "volumev2"],
        None,
        "public",
    );
    assert!(vol.is_some());
    assert!(pick_endpoint(cat, &["load-balancer"], None, "public").is_none());
    let t = fixture("auth-password-project-scoped-resp.json");
    let admin = pick_endpoint(&t["token"]["catalog"], &["identity"], None, "admin");
    assert_eq!(admin.as_deref(), Some("http://example.com/identity"));
}

#[test]
fn error_bodies_of_every_service() {
    let s = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let (k, m) = parse_error(&s(
        "error-409-security-group-rule-exists.reconstructed.json",
    ));
    assert_eq!(k.as_deref(), Some("SecurityGroupRuleExists"));
    assert!(m.unwrap().contains("already exists"));
    let (k, m) = parse_error(&s("error-409-lb-immutable.reconstructed.json"));
    assert_eq!(k.as_deref(), Some("Client"));
    assert!(m.unwrap().contains("immutable"));
    let (k, _) = parse_error(&s("error-itemNotFound-resp.api-guide.json"));
    assert_eq!(k.as_deref(), Some("itemNotFound"));
    let (k, _) = parse_error(&s("error-404-itemNotFound.reconstructed.json"));
    assert_eq!(k.as_deref(), Some("itemNotFound"));
    let (k, m) = parse_error(&s("error-401-unauthorized.reconstructed.json"));
    assert_eq!(k.as_deref(), Some("Unauthorized"));
    assert!(m.is_some());
    assert_eq!(
        parse_error("<html>bad gateway</html>").1.as_deref(),
        Some("<html>bad gateway</html>")
    );
}

#[test]
fn flavors_checked_against_the_minimums() {
    let list = fixture("flavors-list-detail-resp.v2.75.json")["flavors"]
        .as_array()
        .unwrap()
        .clone();
    let spec = crate::tests::spec("");
    let xl = crate::compute::pick_flavor(&list, "m1.xlarge").unwrap();
    assert_eq!((xl.vcpus, xl.ram_mb), (8, 16384));
    crate::compute::check_flavor(&spec, &xl).unwrap();
    let l = crate::compute::pick_flavor(&list, "m1.large").unwrap();
    let err = crate::compute::check_flavor(&spec, &l)
        .unwrap_err()
        .to_string();
    assert!(err.contains("m1.large") && err.contains("8 vCPU"), "{err}");
    // By ID as well.
    let by_id = crate::compute::pick_flavor(&list, &xl.id).unwrap();
    assert_eq!(by_id.name, "m1.xlarge");
    assert!(crate::compute::pick_flavor(&list, "nope").is_none());
}

#[test]
fn server_fixed_ip_and_image_pick() {
    let sv = fixture("server-show-active-resp.v2.100.json");
    assert_eq!(
        crate::compute::fixed_ip(&sv["server"], "private").as_deref(),
        Some("192.168.1.30")
    );
    assert_eq!(
        crate::compute::fixed_ip(&sv["server"], "other-net").as_deref(),
        Some("192.168.1.30")
    );
    let images = fixture("images-list-resp.json");
    assert!(crate::image::pick(images["images"].as_array().unwrap()).is_some());
    assert!(crate::image::pick(&[]).is_none());
}

pub(crate) fn spec(extra: &str) -> acura_ha_api::spec::ClusterSpec {
    let text = format!(
        r#"
[cluster]
name = "acura-os"
[nodes]
count = 3
hostname_prefix = "acura"
[load_balancer]
kind = "cloud"
[access]
admin_cidrs = ["198.51.100.7/32"]
ssh_agent = true
[openstack]
flavor = "m1.xlarge"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "id.pub"
{extra}
"#
    );
    toml::from_str(&text).unwrap()
}

#[test]
fn rules_follow_the_guide_table() {
    let spec = spec("");
    let rules = crate::network::wanted_rules(&spec, "SG");
    let ssh: Vec<&Value> = rules
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b["port_range_min"] == 22 || b["port_range_min"] == 30080)
        .collect();
    assert!(!ssh.is_empty());
    for b in &ssh {
        assert_eq!(b["remote_ip_prefix"], "198.51.100.7/32", "{b}");
        assert_eq!(b["ethertype"], "IPv4");
    }
    let all_tcp = rules
        .iter()
        .map(|(_, b)| b)
        .find(|b| b["port_range_min"] == 1 && b["port_range_max"] == 65535)
        .unwrap();
    assert_eq!(all_tcp["remote_group_id"], "SG");
    assert!(all_tcp.get("remote_ip_prefix").is_none());
    // Neutron's duplicate test: description ignored, 0.0.0.0/0 == no prefix.
    let a = json!({"direction":"ingress","ethertype":"IPv4","protocol":"tcp","port_range_min":443,"port_range_max":443,"remote_ip_prefix":"0.0.0.0/0","description":"x"});
    let b = json!({"direction":"ingress","ethertype":"IPv4","protocol":"tcp","port_range_min":"443","port_range_max":443,"remote_ip_prefix":null,"description":"y"});
    assert!(crate::network::same_rule(&a, &b));
    let c = json!({"direction":"ingress","ethertype":"IPv4","protocol":"udp","port_range_min":443,"port_range_max":443});
    assert!(!crate::network::same_rule(&a, &c));
    // The sample list parses.
    let list = fixture("security-group-rules-list-resp.json");
    assert!(
        list["security_group_rules"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn quota_checks_name_the_short_one() {
    use crate::quota::{compute_checks, network_checks, volume_checks};
    let limits = json!({"limits": {"absolute": {
        "maxTotalCores": 20, "totalCoresUsed": 0,
        "maxTotalRAMSize": 51200, "totalRAMUsed": 0,
        "maxTotalInstances": 10, "totalInstancesUsed": 0}}});
    let c = compute_checks(&limits, 24, 3 * 16384, 3);
    let short: Vec<_> = c.iter().filter(|c| c.short()).collect();
    assert_eq!(short.len(), 1);
    let msg = short[0].error().to_string();
    assert!(
        msg.contains("compute cores") && msg.contains("24") && msg.contains("20"),
        "{msg}"
    );
    let unlimited = json!({"limits": {"absolute": {"maxTotalCores": -1, "totalCoresUsed": 100}}});
    assert!(!compute_checks(&unlimited, 1000, 0, 0)[0].short());
    let net = json!({"quota": {"security_group": {"limit": 10, "used": 10, "reserved": 0}}});
    let mut need = BTreeMap::new();
    need.insert("security_group", 1);
    assert!(network_checks(&net, &need)[0].short());
    let vol = json!({"quota_set": {"gigabytes": {"limit": 1000, "in_use": 500, "reserved": 0}, "volumes": {"limit": 10, "in_use": 0}}});
    let v = volume_checks(&vol, 3, 600);
    assert!(v.iter().any(|c| c.short() && c.what.contains("gigabytes")));
}

#[test]
fn next_page_from_links_or_glance_next() {
    use crate::client::{next_query, parse_query};
    // Octavia's paginated sample: `next` among `previous`; its query wins, not its host.
    let lbs = json!({"loadbalancers": [], "loadbalancers_links": [
        {"rel": "previous", "href": "http://internal:9876/v2/lbaas/loadbalancers?limit=2&marker=a&page_reverse=True"},
        {"rel": "next", "href": "http://internal:9876/v2/lbaas/loadbalancers?limit=2&marker=b%2Bc"}]});
    assert_eq!(
        next_query(&lbs, "loadbalancers").unwrap(),
        vec![
            ("limit".to_string(), "2".to_string()),
            ("marker".to_string(), "b+c".to_string())
        ]
    );
    // Glance: a top-level path.
    let images = json!({"images": [], "first": "/v2/images", "next": "/v2/images?name=ubuntu+20.04&marker=x"});
    assert_eq!(
        next_query(&images, "images").unwrap(),
        parse_query("name=ubuntu%2020.04&marker=x")
    );
    // The projects' own samples.
    let first = fixture("loadbalancers-list-paginated-first-page-resp.general-inc.json");
    let q = next_query(&first, "loadbalancers").unwrap();
    assert!(q.contains(&(
        "marker".into(),
        "0fdb0ca7-0a38-4aea-891c-daaed40bcafe".into()
    )));
    let last = fixture("loadbalancers-list-paginated-last-page-resp.general-inc.json");
    assert!(next_query(&last, "loadbalancers").is_none());
    let kp = fixture("keypairs-list-paginated-resp.v2.35.json");
    let q = next_query(&kp, "keypairs").unwrap();
    assert!(q.contains(&(
        "marker".into(),
        "keypair-5d935425-31d5-48a7-a0f1-e76e9813f2c3".into()
    )));
    // The last page: no `next`.
    assert!(next_query(&json!({"servers": [], "servers_links": []}), "servers").is_none());
    assert!(next_query(&json!({"images": [], "first": "/v2/images"}), "images").is_none());
}

#[test]
fn retry_after_in_seconds_or_as_a_date_and_capped() {
    use crate::client::{MAX_RETRY_AFTER, http_date, retry_after};
    use reqwest::header::{HeaderMap, HeaderValue};
    use std::time::{Duration, SystemTime};
    let h = |v: &str| {
        let mut m = HeaderMap::new();
        m.insert("retry-after", HeaderValue::from_str(v).unwrap());
        m
    };
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    let now = date - Duration::from_secs(10);
    assert_eq!(retry_after(&h("5"), now), Some(Duration::from_secs(5)));
    assert_eq!(retry_after(&h("3600"), now), Some(MAX_RETRY_AFTER));
    // The three forms of an HTTP-date (RFC 9110): ten seconds from `now`.
    for d in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(http_date(d), Some(date), "{d}");
        assert_eq!(
            retry_after(&h(d), now),
            Some(Duration::from_secs(10)),
            "{d}"
        );
    }
    // A date gone by: no wait. Far ahead: the cap.
    assert_eq!(
        retry_after(
            &h("Sun, 06 Nov 1994 08:49:37 GMT"),
            date + Duration::from_secs(5)
        ),
        Some(Duration::ZERO)
    );
    assert_eq!(
        retry_after(&h("Fri, 01 Jan 2100 00:00:00 GMT"), now),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(retry_after(&h("soon"), now), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn retry_after_from_a_field_of_the_body_never_from_its_text() {
    use crate::client::body_retry_after;
    use std::time::Duration;
    // Nova's legacy overLimit fault carries it as a field.
    let nova = r#"{"overLimit": {"code": 413, "message": "This request was rate-limited.", "retryAfter": "2"}}"#;
    assert_eq!(body_retry_after(nova), Some(Duration::from_secs(2)));
    // A number in a message is prose, not an instruction.
    for text in [
        r#"{"overLimit": {"code": 429, "message": "Rate limited [retry after 30 s]"}}"#,
        r#"{"NeutronError": {"type": "OverLimit", "message": "Try again in 30 seconds", "detail": ""}}"#,
        "429 Too Many Requests: retry after 30 s",
    ] {
        assert_eq!(body_retry_after(text), None, "{text}");
    }
}

#[test]
fn tokens_are_renewed_a_tenth_of_their_life_before_the_end() {
    use crate::client::token_deadlines;
    use std::time::{Duration, Instant};
    let now = Instant::now();
    // One hour (Keystone's default): at most a minute before.
    let (renew, expires) = token_deadlines(
        "2015-08-26T19:49:58.000000Z",
        "2015-08-26T20:49:58.000000Z",
        now,
    )
    .unwrap();
    assert_eq!(expires - now, Duration::from_secs(3600));
    assert_eq!(expires - renew, Duration::from_secs(60));
    // Ten seconds: one before.
    let (renew, expires) =
        token_deadlines("2015-08-26T19:49:58Z", "2015-08-26T19:50:08Z", now).unwrap();
    assert_eq!(expires - renew, Duration::from_secs(1));
    assert!(token_deadlines("", "2015-08-26T19:50:08Z", now).is_none());
}
