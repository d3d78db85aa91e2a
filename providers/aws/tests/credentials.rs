//! The S3 state backend's side of #15.7: before the bucket is asked anything, credentials that
//! cannot be found or whose SSO session expired are told in one line naming the bucket, where
//! the tool looked and the fix; an endpoint that does not answer is named with its region. No
//! request reaches the endpoint for the credential cases (a listener of the test's own counts
//! connections). The machine's AWS configuration is kept out: a temporary HOME,
//! AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE in it, AWS_EC2_METADATA_DISABLED.
//! `cargo test -p acura-ha-aws --test credentials`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use acura_ha_aws::s3_state::{S3Settings, S3State};

/// The tests change this process's environment: one at a time.
static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SSO_TOKEN: &str = "sso-access-token-never-printed";

/// A temporary HOME with empty AWS files, every `AWS_*` of the machine removed, the endpoint at
/// `url`, and no keys.
fn isolate(home: &Path, url: &str) {
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(home.join(".aws/config"), "").unwrap();
    std::fs::write(home.join(".aws/credentials"), "").unwrap();
    let vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("AWS_") || k.starts_with("ACURA_HA_AWS_"))
        .collect();
    // SAFETY: under ENV; no other thread of this binary reads the environment meanwhile.
    unsafe {
        for k in vars {
            std::env::remove_var(k);
        }
        std::env::set_var("HOME", home);
        std::env::set_var("AWS_CONFIG_FILE", home.join(".aws/config"));
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"));
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ENDPOINT_URL", url);
        // Fail fast on the unreachable endpoint: one attempt per call is enough to tell.
        std::env::set_var("ACURA_HA_AWS_CONNECT_TIMEOUT_SECS", "2");
    }
}

fn settings(profile: Option<&str>) -> S3Settings {
    S3Settings {
        bucket: "team-state".into(),
        prefix: "prod/".into(),
        region: Some(common::REGION.into()),
        profile: profile.map(String::from),
        kms_key_id: None,
    }
}

/// A directory of this test's own, removed when dropped.
struct TempHome(PathBuf);

impl TempHome {
    fn new() -> TempHome {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("acura-ha-aws-creds-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempHome(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listener on 127.0.0.1 that nothing answers from: the connections it was sent, counted.
struct Counting(TcpListener);

impl Counting {
    fn new() -> Counting {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Counting(l)
    }
    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().unwrap())
    }
    /// Connections made so far (the kernel queues them whether or not they were accepted).
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

fn one_line(e: &str) {
    assert!(!e.contains('\n'), "one line: {e}");
    assert!(
        !e.contains("Unhandled") && !e.contains("DispatchFailure") && !e.contains("source:"),
        "no SDK debug structure: {e}"
    );
}

#[tokio::test]
async fn s3_state_without_credentials_says_where_it_looked() {
    let _env = ENV.lock().await;
    let home = TempHome::new();
    let listener = Counting::new();
    isolate(home.path(), &listener.url());
    let e = S3State::connect(settings(None))
        .await
        .expect_err("no credentials")
        .to_string();
    eprintln!("{e}");
    one_line(&e);
    let creds = home.path().join(".aws/credentials").display().to_string();
    assert!(
        e.starts_with("state s3://team-state/: Unable to locate AWS credentials (looked in: environment AWS_ACCESS_KEY_ID, profile default in "),
        "{e}"
    );
    assert!(e.contains(&creds), "{e}");
    assert!(
        e.ends_with("Run `aws configure` or set AWS_PROFILE."),
        "{e}"
    );
    assert_eq!(listener.connections(), 0, "nothing was sent");
}

#[tokio::test]
async fn s3_state_with_an_expired_sso_session_says_aws_sso_login() {
    let _env = ENV.lock().await;
    let home = TempHome::new();
    let listener = Counting::new();
    isolate(home.path(), &listener.url());
    write_expired_sso(home.path(), "ops");
    let e = S3State::connect(settings(Some("ops")))
        .await
        .expect_err("expired SSO")
        .to_string();
    eprintln!("{e}");
    one_line(&e);
    assert_eq!(
        e,
        "state s3://team-state/: The SSO session for profile ops has expired. Run `aws sso login --profile ops`."
    );
    assert!(!e.contains(SSO_TOKEN));
    assert_eq!(listener.connections(), 0, "nothing was sent");
}

/// An SSO profile never logged in (no token in the cache) gets the same fix.
#[tokio::test]
async fn s3_state_with_an_sso_profile_never_logged_in_says_aws_sso_login() {
    let _env = ENV.lock().await;
    let home = TempHome::new();
    let listener = Counting::new();
    isolate(home.path(), &listener.url());
    write_expired_sso(home.path(), "ops");
    std::fs::remove_dir_all(home.path().join(".aws/sso/cache")).unwrap();
    let e = S3State::connect(settings(Some("ops")))
        .await
        .expect_err("no SSO login")
        .to_string();
    eprintln!("{e}");
    one_line(&e);
    assert!(
        e.starts_with(
            "state s3://team-state/: Profile ops uses SSO but has no SSO login yet (no token in "
        ) && e.ends_with("Run `aws sso login --profile ops`."),
        "{e}"
    );
    assert_eq!(listener.connections(), 0, "nothing was sent");
}

#[tokio::test]
async fn s3_state_with_an_unknown_profile_lists_the_profiles() {
    let _env = ENV.lock().await;
    let home = TempHome::new();
    let listener = Counting::new();
    isolate(home.path(), &listener.url());
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile ops]\nregion = us-east-1\n",
    )
    .unwrap();
    let e = S3State::connect(settings(Some("prod")))
        .await
        .expect_err("unknown profile")
        .to_string();
    eprintln!("{e}");
    one_line(&e);
    assert!(
        e.contains("The AWS profile \"prod\" (named by [state] profile in the cluster file)")
            && e.contains("(profiles found: ops)")
            && e.contains("aws configure --profile prod"),
        "{e}"
    );
    assert_eq!(listener.connections(), 0, "nothing was sent");
}

#[tokio::test]
async fn s3_state_endpoint_that_does_not_answer_is_named() {
    let _env = ENV.lock().await;
    let home = TempHome::new();
    // A port nothing listens on: bound, then released.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    isolate(home.path(), &url);
    // SAFETY: under ENV, as in `isolate`.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    }
    let e = S3State::connect(settings(None))
        .await
        .expect_err("unreachable")
        .to_string();
    eprintln!("{e}");
    one_line(&e);
    assert!(
        e.starts_with(&format!(
            "state s3://team-state/: S3 GetBucketVersioning could not reach {url} (region {})",
            common::REGION
        )),
        "{e}"
    );
    assert!(e.contains("AWS_ENDPOINT_URL"), "{e}");
}

/// A profile whose SSO session has a cached token that expired yesterday (and no refresh token).
fn write_expired_sso(home: &Path, profile: &str) {
    std::fs::write(
        home.join(".aws/config"),
        format!(
            "[profile {profile}]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\nregion = {r}\n\n[sso-session corp]\nsso_start_url = https://corp.example.com/start\nsso_region = {r}\n",
            r = common::REGION
        ),
    )
    .unwrap();
    let cache: PathBuf = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    // The cache file's name is the SHA-1 of the session name, as the SDK and the aws CLI look.
    let out = std::process::Command::new("sh")
        .args(["-c", "printf %s corp | sha1sum"])
        .output()
        .expect("sha1sum (coreutils)");
    let sha = String::from_utf8(out.stdout).unwrap();
    let sha = sha.split_whitespace().next().expect("a digest").to_string();
    let yesterday = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(86_400),
    );
    std::fs::write(
        cache.join(format!("{sha}.json")),
        serde_json::json!({
            "accessToken": SSO_TOKEN,
            "expiresAt": yesterday.to_string(),
            "region": common::REGION,
            "startUrl": "https://corp.example.com/start",
        })
        .to_string(),
    )
    .unwrap();
}
