//! Cloud errors a person can act on (#15.7, AWS): through the binary, with the machine's own AWS
//! configuration kept out (a temporary HOME, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE in
//! it, AWS_EC2_METADATA_DISABLED so nothing asks 169.254.169.254), every AWS_ENDPOINT_URL* on
//! the fault proxy in front of moto so every request is counted: no credentials, an expired SSO
//! session, an unknown profile (from AWS_PROFILE and from the cluster file), a refused
//! permission, an endpoint that does not answer, an endpoint of another region, and a `plan`
//! whose refresh would read the cloud; the SDK's own error structure only with `-v`. Each fails with one line that names where the tool looked and the fix, under its own
//! code, before any request that changes something (for credentials: before any request at all).
//! `cargo test --test aws_credentials`.

#[path = "../providers/aws/tests/common/mod.rs"]
#[allow(dead_code, clippy::all)]
mod aws;
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use aws::{Moto, Proxy, apply_aws_env};
use serde_json::json;

/// An SSO access token in the cache: it must never show in the output.
const SSO_TOKEN: &str = "sso-access-token-never-printed";

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cluster {
    /// examples/aws.toml with a test key and the harness's region; `profile` adds
    /// `[aws] profile`.
    fn new(name: &str, profile: Option<&str>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("id.pub"),
            format!("{}\n", aws::TEST_PUBLIC_KEY),
        )
        .unwrap();
        let region_line = format!("region = \"{}\"", aws::REGION);
        let text = std::fs::read_to_string(common::example("aws.toml"))
            .unwrap()
            .replace("name = \"acura-aws\"", &format!("name = \"{name}\""))
            .replace(
                "region = \"eu-central-1\"",
                &match profile {
                    Some(p) => format!("{region_line}\nprofile = \"{p}\""),
                    None => region_line,
                },
            )
            .replace(
                "public_key_file = \"~/.ssh/id_ed25519.pub\"",
                "public_key_file = \"id.pub\"",
            );
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.aws")).unwrap();
        Cluster { dir, config }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn config_file(&self) -> PathBuf {
        self.home().join(".aws/config")
    }
    fn credentials_file(&self) -> PathBuf {
        self.home().join(".aws/credentials")
    }

    /// The harness's environment (the proxy's URL, the test keys), then `env` over it; a `None`
    /// value removes the variable. The machine's AWS files are never read.
    fn run(&self, url: &str, env: &[(&str, Option<&str>)], args: &[&str]) -> Output {
        let mut cmd = common::acura_ha_std();
        apply_aws_env(&mut cmd, url);
        cmd.env("HOME", self.home())
            .env("AWS_CONFIG_FILE", self.config_file())
            .env("AWS_SHARED_CREDENTIALS_FILE", self.credentials_file())
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.args(args).arg("-c").arg(&self.config).output().unwrap()
    }
}

/// No key in the environment: only the files (and SSO) can give credentials.
const NO_KEYS: [(&str, Option<&str>); 3] = [
    ("AWS_ACCESS_KEY_ID", None),
    ("AWS_SECRET_ACCESS_KEY", None),
    ("AWS_SESSION_TOKEN", None),
];

/// The `error[…]` line of a failed run: exit 1, exactly one such line, and it is the whole
/// message (no SDK structure on further lines).
fn error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "stderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error[")).collect();
    assert_eq!(lines.len(), 1, "one error line:\n{err}");
    assert!(
        !err.contains("Unhandled") && !err.contains("DispatchFailure") && !err.contains("source:"),
        "no SDK debug structure:\n{err}"
    );
    eprintln!("{}", lines[0]);
    lines[0].to_string()
}

fn requests(proxy: &Proxy) -> (u64, u64) {
    let s = proxy.stats();
    (
        s["total"].as_u64().unwrap_or(0),
        s["mutating"].as_u64().unwrap_or(0),
    )
}

/// A profile whose SSO session (`sso_session`) has a token in the cache that expired yesterday.
fn write_expired_sso(c: &Cluster, profile: &str) {
    std::fs::write(
        c.config_file(),
        format!(
            "[profile {profile}]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\nregion = {region}\n\n[sso-session corp]\nsso_start_url = https://corp.example.com/start\nsso_region = {region}\nsso_registration_scopes = sso:account:access\n",
            region = aws::REGION
        ),
    )
    .unwrap();
    let cache = c.home().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    // The SDK's (and the aws CLI's) cache file name: the SHA-1 of the session name.
    let sha = std::process::Command::new("sh")
        .args(["-c", "printf %s corp | sha1sum"])
        .output()
        .expect("sha1sum (coreutils)");
    let sha = String::from_utf8(sha.stdout).unwrap();
    let sha = sha.split_whitespace().next().unwrap();
    let yesterday = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(86_400),
    );
    std::fs::write(
        cache.join(format!("{sha}.json")),
        json!({
            "accessToken": SSO_TOKEN,
            "expiresAt": yesterday.to_string(),
            "region": aws::REGION,
            "startUrl": "https://corp.example.com/start",
        })
        .to_string(),
    )
    .unwrap();
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn no_credentials_names_where_it_looked_and_aws_configure() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("nocreds", None);
    let line = error_line(&c.run(
        &proxy.url(),
        &NO_KEYS,
        &["up", "--only", "provision", "--yes"],
    ));
    assert!(line.starts_with("error[AH304]: AWS credentials: Unable to locate AWS credentials (looked in: environment AWS_ACCESS_KEY_ID, profile default in "), "{line}");
    assert!(
        line.contains(&path(&c.credentials_file())) && line.contains(&path(&c.config_file())),
        "{line}"
    );
    assert!(line.contains("SSO, container/instance metadata"), "{line}");
    assert!(
        line.ends_with("Run `aws configure` or set AWS_PROFILE."),
        "{line}"
    );
    assert_eq!(requests(&proxy), (0, 0), "no request at all");

    // The SDK's own structure only when asked for: `-v` (below), or ACURA_HA_AWS_DEBUG.
    let mut env = NO_KEYS.to_vec();
    env.push(("ACURA_HA_AWS_DEBUG", Some("1")));
    let o = c.run(&proxy.url(), &env, &["up", "--only", "provision", "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[  aws ] credentials: CredentialsNotLoaded")),
        "{err}"
    );
}

#[test]
fn an_expired_sso_session_says_aws_sso_login() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("ssoexp", Some("dev"));
    write_expired_sso(&c, "dev");
    let o = c.run(
        &proxy.url(),
        &NO_KEYS,
        &["up", "--only", "provision", "--yes"],
    );
    let line = error_line(&o);
    assert_eq!(
        line,
        "error[AH304]: AWS credentials: The SSO session for profile dev has expired. Run `aws sso login --profile dev`."
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(SSO_TOKEN), "the token is never printed");
    assert_eq!(requests(&proxy), (0, 0), "no request at all");
}

#[test]
fn an_unknown_profile_names_it_the_files_and_the_profiles_found() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("noprof", None);
    std::fs::write(
        c.config_file(),
        "[default]\nregion = us-east-1\n\n[profile dev]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        c.credentials_file(),
        "[ci]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = not-printed\n",
    )
    .unwrap();

    // From AWS_PROFILE.
    let mut env = NO_KEYS.to_vec();
    env.push(("AWS_PROFILE", Some("prod")));
    let o = c.run(&proxy.url(), &env, &["up", "--only", "provision", "--yes"]);
    let line = error_line(&o);
    assert!(
        line.starts_with("error[AH304]: AWS credentials: The AWS profile \"prod\" (named by AWS_PROFILE) is not in "),
        "{line}"
    );
    assert!(
        line.contains(&path(&c.credentials_file())) && line.contains(&path(&c.config_file())),
        "{line}"
    );
    assert!(
        line.contains("(profiles found: ci, default, dev)"),
        "{line}"
    );
    assert!(line.contains("`export AWS_PROFILE=ci`"), "{line}");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("not-printed"));

    // From the cluster file: the fix is that line.
    let c2 = Cluster::new("noprof2", Some("prod"));
    std::fs::copy(c.config_file(), c2.config_file()).unwrap();
    std::fs::copy(c.credentials_file(), c2.credentials_file()).unwrap();
    let line = error_line(&c2.run(
        &proxy.url(),
        &NO_KEYS,
        &["up", "--only", "provision", "--yes"],
    ));
    assert!(
        line.contains("\"prod\" (named by [aws] profile in the cluster file)")
            && line.contains("profile = \"ci\""),
        "{line}"
    );
    assert_eq!(requests(&proxy), (0, 0), "no request at all");
}

/// The refresh `plan` makes against a state reads the cloud: it is checked first too.
#[test]
fn plan_against_a_state_checks_credentials_before_its_refresh() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("planrefresh", None);
    let up = c.run(&proxy.url(), &[], &["up", "--only", "provision", "--yes"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    proxy.reset_stats();
    let line = error_line(&c.run(&proxy.url(), &NO_KEYS, &["plan"]));
    assert!(
        line.starts_with("error[AH304]: AWS credentials: Unable to locate AWS credentials"),
        "{line}"
    );
    assert_eq!(requests(&proxy), (0, 0), "the refresh read nothing");
    let down = c.run(&proxy.url(), &[], &["down", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

#[test]
fn a_refused_permission_names_the_call_region_and_request() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(json!([{
        "action": "DescribeInstanceTypes",
        "fault": "UnauthorizedOperation",
        "status": 403,
        "message": "You are not authorized to perform this operation.",
        "times": 100
    }]));
    let c = Cluster::new("denied", None);
    let line = error_line(&c.run(&proxy.url(), &[], &["up", "--only", "provision", "--yes"]));
    assert!(
        line.starts_with(&format!(
            "error[AH301]: AWS permissions: EC2 DescribeInstanceTypes in region {} was refused: UnauthorizedOperation: You are not authorized to perform this operation.",
            aws::REGION
        )),
        "{line}"
    );
    assert!(line.contains("allows ec2:DescribeInstanceTypes"), "{line}");
    assert!(line.contains("aws sts get-caller-identity"), "{line}");
    let logged = proxy.stats()["faults_injected"].as_u64().unwrap_or(0);
    assert!(logged >= 1);
    assert!(line.contains("(request ID "), "{line}");
    let (_, mutating) = requests(&proxy);
    assert_eq!(mutating, 0, "nothing was created: {:#}", proxy.stats());
}

#[test]
fn an_endpoint_that_does_not_answer_is_named_with_its_region() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let c = Cluster::new("unreach", None);
    let line = error_line(&c.run(&url, &[], &["up", "--only", "provision", "--yes"]));
    // EC2 and ELBv2 are asked at once: either may be the first to fail.
    assert!(
        line.starts_with("error[AH305]: AWS endpoint: EC2 ")
            || line.starts_with("error[AH305]: AWS endpoint: ELBv2 "),
        "{line}"
    );
    assert!(
        line.contains(&format!("could not reach {url} (region {})", aws::REGION)),
        "{line}"
    );
    assert!(line.contains("AWS_ENDPOINT_URL"), "{line}");
}

/// The S3 state backend is checked the same way, and before the cluster's cloud: `plan` with
/// `[state] backend = "s3"` and no credentials is one line naming the bucket and the fix.
#[test]
fn the_s3_state_without_credentials_names_the_bucket_and_the_fix() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("s3nocreds", None);
    let text = std::fs::read_to_string(&c.config).unwrap();
    std::fs::write(
        &c.config,
        format!("{text}\n[state]\nbackend = \"s3\"\nbucket = \"team-state\"\n"),
    )
    .unwrap();
    let line = error_line(&c.run(&proxy.url(), &NO_KEYS, &["plan"]));
    assert!(
        line.starts_with("error[AH215]: ")
            && line.contains("s3://team-state/: Unable to locate AWS credentials (looked in: ")
            && line.ends_with("Run `aws configure` or set AWS_PROFILE."),
        "{line}"
    );
    assert_eq!(requests(&proxy), (0, 0), "no request at all");
}

/// `-v` (global, anywhere on the line) adds the SDK's own error structure on stderr; without it
/// the failure is the one line and nothing of the SDK's structure.
#[test]
fn the_sdk_error_structure_only_with_verbose() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let c = Cluster::new("verbose", None);
    let mut env = NO_KEYS.to_vec();
    env.push(("ACURA_HA_AWS_DEBUG", None));
    let quiet = c.run(&proxy.url(), &env, &["up", "--only", "provision", "--yes"]);
    let line = error_line(&quiet);
    assert!(line.starts_with("error[AH304]: "), "{line}");
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        !err.contains("[  aws ]"),
        "no SDK structure without -v:\n{err}"
    );

    for args in [
        &["-v", "up", "--only", "provision", "--yes"][..],
        &["up", "--only", "provision", "--yes", "--verbose"][..],
    ] {
        let loud = c.run(&proxy.url(), &env, args);
        let err = String::from_utf8_lossy(&loud.stderr);
        assert_eq!(loud.status.code(), Some(1), "{err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error[")).count(),
            1,
            "{err}"
        );
        assert!(
            err.lines()
                .any(|l| l.starts_with("[  aws ] credentials: CredentialsNotLoaded")),
            "{args:?}: the SDK's structure with -v:\n{err}"
        );
    }
    assert_eq!(requests(&proxy), (0, 0), "no request at all");
}

/// An endpoint that serves another region than the one the requests are signed for (AWS answers
/// `SignatureDoesNotMatch: Credential should be scoped to a valid region, not '…'`; moto takes
/// any region, so the fault proxy answers as that endpoint would): one line naming the region,
/// the endpoint and both fixes, under the endpoint's code (AH305), not "refused credentials";
/// nothing is created.
#[test]
fn an_endpoint_of_another_region_names_the_region_and_the_fix() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(json!([{
        "action": "*",
        "fault": "SignatureDoesNotMatch",
        "status": 403,
        "message": "Credential should be scoped to a valid region, not 'ap-nowhere-9'. ",
        "times": 1000
    }]));
    let c = Cluster::new("wrongregion", None);
    let text = std::fs::read_to_string(&c.config).unwrap().replace(
        &format!("region = \"{}\"", aws::REGION),
        "region = \"ap-nowhere-9\"",
    );
    std::fs::write(&c.config, text).unwrap();
    let o = c.run(
        &proxy.url(),
        &[("ACURA_HA_AWS_DEBUG", None)],
        &["up", "--only", "provision", "--yes"],
    );
    let line = error_line(&o);
    // EC2 and ELBv2 are asked at once: either may be the first to be refused.
    let var = if line.starts_with("error[AH305]: AWS endpoint: EC2 ") {
        "AWS_ENDPOINT_URL_EC2"
    } else {
        assert!(
            line.starts_with("error[AH305]: AWS endpoint: ELBv2 "),
            "{line}"
        );
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2"
    };
    assert!(
        line.contains(&format!(
            "the endpoint {} does not serve region ap-nowhere-9",
            proxy.url()
        )),
        "{line}"
    );
    assert!(line.contains("SignatureDoesNotMatch"), "{line}");
    assert!(
        line.contains("set region in [aws] of the cluster file")
            && line.contains(&format!(
                "{var} (or AWS_ENDPOINT_URL) at region ap-nowhere-9's endpoint"
            )),
        "{line}"
    );
    assert!(
        !line.contains("aws configure"),
        "not a credentials fix: {line}"
    );
    let (total, mutating) = requests(&proxy);
    assert!(total >= 1, "{:#}", proxy.stats());
    assert_eq!(mutating, 0, "nothing was created: {:#}", proxy.stats());

    // With -v, the SDK's structure of that answer too.
    let o = c.run(
        &proxy.url(),
        &[("ACURA_HA_AWS_DEBUG", None)],
        &["-v", "up", "--only", "provision", "--yes"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[  aws ] ") && l.contains("SignatureDoesNotMatch")),
        "{err}"
    );
}
