//! The AWS configuration every client is built from, with the region and the credentials
//! resolved once, up front, through the SDK's own provider chain (environment, profile files,
//! SSO, container and instance metadata — as the aws CLI looks): a run that cannot sign a
//! request stops here, before anything is created or read, with one line naming where the tool
//! looked and the command that fixes it, instead of failing its first call with the SDK's
//! nested error blamed on whatever that call was about.
//!
//! The SDK's own error structure is printed (to stderr) only with `-v` (or `ACURA_HA_AWS_DEBUG`
//! set).

use std::path::PathBuf;

use acura_ha_api::provider::ProviderError;
use aws_sdk_ec2::config::ProvideCredentials;

// The resources of these errors live beside the error mapping (`crate::error`), which names
// them too; the public paths stay here.
pub use crate::error::{PERMISSIONS_RESOURCE, REGION_RESOURCE, RESOURCE};

/// What the cluster file (or the state backend's settings) asks for.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Where `profile` comes from, for the fix: `[aws] profile in the cluster file`.
    pub profile_setting: &'static str,
}

/// Why no request could be signed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "Unable to locate AWS credentials (looked in: environment AWS_ACCESS_KEY_ID, profile {profile} in {credentials_file} and {config_file}, SSO, container/instance metadata{imds}). Run `aws configure{profile_arg}` or set AWS_PROFILE."
    )]
    NotFound {
        profile: String,
        profile_arg: String,
        credentials_file: String,
        config_file: String,
        imds: &'static str,
    },

    #[error(
        "The SSO session for profile {profile} has expired. Run `aws sso login --profile {profile}`."
    )]
    SsoExpired { profile: String },

    #[error(
        "Profile {profile} uses SSO but has no SSO login yet (no token in {cache}). Run `aws sso login --profile {profile}`."
    )]
    SsoNotLoggedIn { profile: String, cache: String },

    #[error(
        "The AWS profile {profile:?} (named by {origin}) is not in {credentials_file} or {config_file} (profiles found: {found}). {fix}"
    )]
    UnknownProfile {
        profile: String,
        origin: String,
        credentials_file: String,
        config_file: String,
        found: String,
        fix: String,
    },

    #[error(
        "No AWS region (looked in: [aws] region in the cluster file, AWS_REGION, AWS_DEFAULT_REGION, profile {profile} in {config_file}). Set region in [aws] of the cluster file, or run `aws configure set region <region>{profile_arg}`."
    )]
    NoRegion {
        profile: String,
        profile_arg: String,
        config_file: String,
    },

    #[error(
        "The AWS credentials of profile {profile} could not be loaded: {cause}. Check the profile in {config_file} (`aws configure list{profile_arg}` shows what the aws CLI finds)."
    )]
    Failed {
        profile: String,
        profile_arg: String,
        config_file: String,
        cause: String,
    },
}

impl CredentialsError {
    /// A short, stable name of the case (the state backend's error carries it as its code).
    pub fn code(&self) -> &'static str {
        match self {
            CredentialsError::NotFound { .. } => "NoCredentials",
            CredentialsError::SsoExpired { .. } => "SsoTokenExpired",
            CredentialsError::SsoNotLoggedIn { .. } => "SsoTokenMissing",
            CredentialsError::UnknownProfile { .. } => "ProfileNotFound",
            CredentialsError::NoRegion { .. } => "NoRegion",
            CredentialsError::Failed { .. } => "CredentialsError",
        }
    }

    pub fn into_provider(self) -> ProviderError {
        let resource = match self {
            CredentialsError::NoRegion { .. } => REGION_RESOURCE,
            _ => RESOURCE,
        };
        ProviderError::Cloud {
            resource: resource.to_string(),
            message: self.to_string(),
            request_id: None,
        }
    }
}

/// Where the profile files are, as the SDK and the aws CLI find them.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub credentials: PathBuf,
    pub config: PathBuf,
}

impl Files {
    pub(crate) fn from_env() -> Files {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("~"));
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Files {
            credentials: var("AWS_SHARED_CREDENTIALS_FILE")
                .unwrap_or_else(|| home.join(".aws").join("credentials")),
            config: var("AWS_CONFIG_FILE").unwrap_or_else(|| home.join(".aws").join("config")),
        }
    }

    /// Every profile either file defines (`[name]` in the credentials file; `[default]` and
    /// `[profile name]` in the config file), sorted, without duplicates. A file that cannot be
    /// read defines none (the SDK treats it the same way).
    pub(crate) fn profiles(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for (path, is_config) in [(&self.credentials, false), (&self.config, true)] {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            for line in text.lines() {
                let Some(section) = line
                    .trim()
                    .strip_prefix('[')
                    .and_then(|l| l.split(']').next())
                else {
                    continue;
                };
                let section = section.trim();
                let name = if !is_config {
                    Some(section)
                } else if section == "default" {
                    Some("default")
                } else {
                    section.strip_prefix("profile ").map(str::trim)
                };
                if let Some(n) = name.filter(|n| !n.is_empty()) {
                    out.insert(n.to_string());
                }
            }
        }
        out.into_iter().collect()
    }
}

impl Files {
    /// Whether the config file's section of `profile` takes its credentials from SSO
    /// (`sso_session`, or the legacy `sso_start_url`).
    pub(crate) fn uses_sso(&self, profile: &str) -> bool {
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        let mut inside = false;
        for line in text.lines().map(str::trim) {
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                let section = section.trim();
                inside = section == format!("profile {profile}")
                    || (profile == "default" && section == "default");
                continue;
            }
            let key = line.split('=').next().unwrap_or("").trim();
            if inside && (key == "sso_session" || key == "sso_start_url") {
                return true;
            }
        }
        false
    }
}

/// The profile in use and who chose it: `[aws] profile` (or the state's `profile`), else
/// `AWS_PROFILE`, else `default` — the SDK's order.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub name: String,
    /// `None` for the implicit `default`.
    pub origin: Option<String>,
}

impl Profile {
    pub(crate) fn of(wanted: &Wanted) -> Profile {
        if let Some(p) = &wanted.profile {
            return Profile {
                name: p.clone(),
                origin: Some(wanted.profile_setting.to_string()),
            };
        }
        match std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
            Some(p) => Profile {
                name: p,
                origin: Some("AWS_PROFILE".into()),
            },
            None => Profile {
                name: "default".into(),
                origin: None,
            },
        }
    }

    /// ` --profile <name>` for a suggested aws CLI command, empty for `default`.
    fn arg(&self) -> String {
        if self.name == "default" {
            String::new()
        } else {
            format!(" --profile {}", self.name)
        }
    }
}

/// The SDK's configuration for `wanted`, with the region found and credentials that resolve;
/// the retries and timeouts of every call.
pub async fn load(wanted: &Wanted) -> Result<aws_config::SdkConfig, CredentialsError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(crate::RETRY_ATTEMPTS),
        )
        .timeout_config(crate::timeouts());
    if let Some(region) = &wanted.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &wanted.profile {
        loader = loader.profile_name(profile);
    }
    let conf = loader.load().await;
    let profile = Profile::of(wanted);
    let files = Files::from_env();
    let Some(region) = conf.region().map(|r| r.to_string()) else {
        return Err(
            unknown_profile(&profile, &files).unwrap_or(CredentialsError::NoRegion {
                profile_arg: profile.arg(),
                profile: profile.name,
                config_file: files.config.display().to_string(),
            }),
        );
    };
    let Some(provider) = conf.credentials_provider() else {
        return Err(not_found(&profile, &files));
    };
    match provider.provide_credentials().await {
        Ok(_) => {
            crate::error::set_target(crate::error::Target {
                region,
                endpoint_url: conf.endpoint_url().map(String::from),
            });
            Ok(conf)
        }
        Err(e) => {
            crate::error::debug("credentials", &e);
            Err(classify(&e, &profile, &files))
        }
    }
}

/// The profile was named (cluster file, `AWS_PROFILE`) but neither file has it.
fn unknown_profile(profile: &Profile, files: &Files) -> Option<CredentialsError> {
    let origin = profile.origin.clone()?;
    let found = files.profiles();
    if found.contains(&profile.name) {
        return None;
    }
    let example = found
        .iter()
        .find(|p| *p != &profile.name)
        .cloned()
        .unwrap_or_else(|| "<profile>".into());
    let fix = if origin == "AWS_PROFILE" {
        format!(
            "Run `export AWS_PROFILE={example}`, or `aws configure --profile {}` to create it.",
            profile.name
        )
    } else {
        format!(
            "Set {origin} to one of them (profile = \"{example}\"), or run `aws configure --profile {}` to create it.",
            profile.name
        )
    };
    Some(CredentialsError::UnknownProfile {
        profile: profile.name.clone(),
        origin,
        credentials_file: files.credentials.display().to_string(),
        config_file: files.config.display().to_string(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
        fix,
    })
}

fn not_found(profile: &Profile, files: &Files) -> CredentialsError {
    let imds_off = std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    CredentialsError::NotFound {
        profile: profile.name.clone(),
        profile_arg: profile.arg(),
        credentials_file: files.credentials.display().to_string(),
        config_file: files.config.display().to_string(),
        imds: if imds_off {
            " (instance metadata off: AWS_EC2_METADATA_DISABLED)"
        } else {
            ""
        },
    }
}

/// Which case a failed resolution is, from the SDK's error: its variant (the `Debug` name,
/// public API) and the messages of its sources.
fn classify(
    e: &(dyn std::error::Error + 'static),
    profile: &Profile,
    files: &Files,
) -> CredentialsError {
    if let Some(unknown) = unknown_profile(profile, files) {
        return unknown;
    }
    let debug = format!("{e:?}");
    let text = crate::error::chain(e);
    if debug.contains("ExpiredToken") || text.contains("SSO token has expired") {
        return CredentialsError::SsoExpired {
            profile: profile.name.clone(),
        };
    }
    // The legacy form (`sso_start_url` in the profile) reads the cache itself and sends even
    // an expired token: the portal's 401 (UnauthorizedException) means the same thing.
    let sso = files.uses_sso(&profile.name);
    if sso && (text.contains("UnauthorizedException") || text.contains("expired")) {
        return CredentialsError::SsoExpired {
            profile: profile.name.clone(),
        };
    }
    if text.contains("failed to load the cached SSO token") || (sso && text.contains("sso/cache")) {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("~"));
        return CredentialsError::SsoNotLoggedIn {
            profile: profile.name.clone(),
            cache: home.join(".aws/sso/cache").display().to_string(),
        };
    }
    if debug.starts_with("CredentialsNotLoaded") {
        return not_found(profile, files);
    }
    CredentialsError::Failed {
        profile: profile.name.clone(),
        profile_arg: profile.arg(),
        config_file: files.config.display().to_string(),
        cause: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_both_files() {
        let dir =
            std::env::temp_dir().join(format!("acura-ha-aws-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = Files {
            credentials: dir.join("credentials"),
            config: dir.join("config"),
        };
        std::fs::write(
            &files.credentials,
            "[ci]\naws_access_key_id = x\n[default]\n",
        )
        .unwrap();
        std::fs::write(
            &files.config,
            "[default]\nregion = eu-west-1\n[profile dev]\nsso_session = corp\n[sso-session corp]\n[services s]\n",
        )
        .unwrap();
        assert_eq!(files.profiles(), ["ci", "default", "dev"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An error with only a message, as the SDK's sources are seen here.
    #[derive(Debug)]
    struct Said(&'static str);
    impl std::fmt::Display for Said {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Said {}

    #[test]
    fn a_legacy_sso_profile_refused_by_the_portal_is_an_expired_session() {
        let dir =
            std::env::temp_dir().join(format!("acura-ha-aws-legacy-sso-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = Files {
            credentials: dir.join("credentials"),
            config: dir.join("config"),
        };
        std::fs::write(
            &files.config,
            "[profile old]\nsso_start_url = https://x.example.com/start\nsso_region = us-east-1\n[profile keys]\nregion = us-east-1\n",
        )
        .unwrap();
        assert!(files.uses_sso("old") && !files.uses_sso("keys"));
        let profile = |n: &str| Profile {
            name: n.into(),
            origin: Some("AWS_PROFILE".into()),
        };
        let portal = Said("UnauthorizedException: Session token not found or invalid");
        assert!(matches!(
            classify(&portal, &profile("old"), &files),
            CredentialsError::SsoExpired { profile } if profile == "old"
        ));
        let missing = Said("failed to read `/home/u/.aws/sso/cache/ab.json`");
        assert!(matches!(
            classify(&missing, &profile("old"), &files),
            CredentialsError::SsoNotLoggedIn { .. }
        ));
        assert!(matches!(
            classify(&portal, &profile("keys"), &files),
            CredentialsError::Failed { .. }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_are_one_line_with_the_fix() {
        let e = CredentialsError::SsoExpired {
            profile: "dev".into(),
        };
        assert_eq!(
            e.to_string(),
            "The SSO session for profile dev has expired. Run `aws sso login --profile dev`."
        );
        let p = e.into_provider();
        assert!(matches!(&p, ProviderError::Cloud { resource, .. } if resource == RESOURCE));
        assert!(!p.to_string().contains('\n'));
    }
}
