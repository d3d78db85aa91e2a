//! Where the credentials come from, resolved as the openstack CLI does: a `clouds.yaml` entry
//! (named by `[openstack] cloud` or `OS_CLOUD`; `secure.yaml` merged over it), otherwise the
//! `OS_*` variables. Secrets are wrapped in [`Secret`], whose `Debug` prints `***`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A password or application-credential secret: never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A user or project, by ID or by name in a domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub id: Option<String>,
    pub name: Option<String>,
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
}

impl Named {
    fn is_empty(&self) -> bool {
        self.id.is_none() && self.name.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        user: Named,
        password: Secret,
        project: Named,
    },
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        /// Needed with `name`.
        user: Named,
        secret: Secret,
    },
}

/// Everything needed to get a token and pick endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    pub auth_url: String,
    pub credentials: Credentials,
    pub region: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: String,
    /// A PEM bundle to trust besides the system's roots.
    pub cacert: Option<PathBuf>,
    /// Where this came from, for error messages: `clouds.yaml entry "x" in /path`.
    pub source: String,
}

/// What the cluster file adds to the lookup.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub interface: Option<String>,
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The environment as the lookup sees it (a map in tests).
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
    fn cwd(&self) -> PathBuf;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
    fn cwd(&self) -> PathBuf {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }
    fn cwd(&self) -> PathBuf {
        self.get("PWD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Default, Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    auth: BTreeMap<String, serde_norway::Value>,
    auth_type: Option<String>,
    region_name: Option<String>,
    #[serde(default)]
    regions: Vec<serde_norway::Value>,
    interface: Option<String>,
    cacert: Option<String>,
}

/// The `clouds.yaml` (or `secure.yaml`) files the CLI searches, in order.
pub fn search_path(env: &dyn Env, file: &str, var: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = env.var(var) {
        out.push(PathBuf::from(p));
    }
    out.push(env.cwd().join(file));
    if let Some(home) = env.home() {
        out.push(home.join(".config/openstack").join(file));
    }
    out.push(Path::new("/etc/openstack").join(file));
    out
}

fn first_existing(paths: &[PathBuf]) -> Option<&PathBuf> {
    paths.iter().find(|p| p.is_file())
}

fn read_yaml(path: &Path) -> Result<CloudsFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    serde_norway::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

/// Deep merge: `over`'s keys win, mappings merge.
fn merge(base: &mut serde_norway::Value, over: serde_norway::Value) {
    use serde_norway::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn text(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resolves the cloud to talk to.
pub fn resolve(ov: &Overrides, env: &dyn Env) -> Result<CloudConfig, ConfigError> {
    let (cloud, origin) = match (&ov.cloud, env.var("OS_CLOUD")) {
        (Some(c), _) => (Some(c.clone()), Origin::ClusterFile),
        (None, Some(c)) => (Some(c), Origin::OsCloud),
        (None, None) => (None, Origin::OsCloud),
    };
    let mut cfg = match &cloud {
        Some(name) => from_clouds_yaml(name, origin, env)?,
        None => from_env(env)?,
    };
    // As the CLI: command-line (here the cluster file) over OS_* over clouds.yaml.
    if let Some(r) = ov.region.clone().or_else(|| env.var("OS_REGION_NAME")) {
        cfg.region = Some(r);
    }
    if let Some(i) = ov.interface.clone().or_else(|| env.var("OS_INTERFACE")) {
        cfg.interface = i;
    }
    if let Some(c) = ov
        .cacert
        .clone()
        .or_else(|| env.var("OS_CACERT").map(PathBuf::from))
    {
        cfg.cacert = Some(c);
    }
    cfg.interface = normalise_interface(&cfg.interface);
    Ok(cfg)
}

fn normalise_interface(i: &str) -> String {
    i.trim_end_matches("URL").to_ascii_lowercase()
}

/// Who named the cloud: the fix of an unknown name goes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// `[openstack] cloud` (it wins over `OS_CLOUD`).
    ClusterFile,
    OsCloud,
}

impl Origin {
    fn describe(self) -> &'static str {
        match self {
            Origin::ClusterFile => "[openstack] cloud in the cluster file",
            Origin::OsCloud => "OS_CLOUD",
        }
    }
    /// How to name another cloud.
    fn fix(self, example: &str) -> String {
        match self {
            Origin::ClusterFile => {
                format!("set [openstack] cloud = \"{example}\" in the cluster file")
            }
            Origin::OsCloud => format!("`export OS_CLOUD={example}`"),
        }
    }
}

fn from_clouds_yaml(name: &str, origin: Origin, env: &dyn Env) -> Result<CloudConfig, ConfigError> {
    let paths = search_path(env, "clouds.yaml", "OS_CLIENT_CONFIG_FILE");
    let Some(path) = first_existing(&paths) else {
        return Err(ConfigError(format!(
            "cloud {name:?} (named by {}): no clouds.yaml found (looked in {}): save the cloud's clouds.yaml (the dashboard's API Access page has it) as {}, or unset OS_CLOUD and source the cloud's openrc file",
            origin.describe(),
            list(&paths),
            env.home()
                .map(|h| h.join(".config/openstack/clouds.yaml"))
                .unwrap_or_else(|| PathBuf::from("/etc/openstack/clouds.yaml"))
                .display(),
        )));
    };
    let file = read_yaml(path)?;
    let Some(mut entry) = file.clouds.get(name).cloned() else {
        let known: Vec<&String> = file.clouds.keys().collect();
        let example = known.first().map(|k| k.as_str()).unwrap_or("<cloud>");
        return Err(ConfigError(format!(
            "cloud {name:?} (named by {}) is not in {} (it has {}; looked in {}): {}, or add an entry {name:?} to {}",
            origin.describe(),
            path.display(),
            if known.is_empty() {
                "no clouds".to_string()
            } else {
                known
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            list(&paths),
            origin.fix(example),
            path.display(),
        )));
    };
    let secure_paths = search_path(env, "secure.yaml", "OS_CLIENT_SECURE_FILE");
    if let Some(sp) = first_existing(&secure_paths)
        && let Ok(secure) = read_yaml(sp)
        && let Some(extra) = secure.clouds.get(name).cloned()
    {
        merge(&mut entry, extra);
    }
    let entry: Entry = serde_norway::from_value(entry)
        .map_err(|e| ConfigError(format!("cloud {name:?} in {}: {e}", path.display())))?;
    let a = |k: &str| entry.auth.get(k).and_then(text);
    let source = format!("clouds.yaml entry {name:?} in {}", path.display());
    let auth_type = entry.auth_type.clone().unwrap_or_else(|| {
        if a("application_credential_secret").is_some() {
            "v3applicationcredential".into()
        } else {
            "password".into()
        }
    });
    let credentials = credentials(&auth_type, &a, &source)?;
    let auth_url =
        a("auth_url").ok_or_else(|| ConfigError(format!("{source}: auth.auth_url is missing")))?;
    let region = entry.region_name.clone().or_else(|| {
        entry.regions.first().and_then(|r| match r {
            serde_norway::Value::Mapping(m) => m.get("name").and_then(text),
            other => text(other),
        })
    });
    Ok(CloudConfig {
        auth_url,
        credentials,
        region,
        interface: entry.interface.unwrap_or_else(|| "public".into()),
        cacert: entry.cacert.map(PathBuf::from),
        source,
    })
}

fn from_env(env: &dyn Env) -> Result<CloudConfig, ConfigError> {
    let Some(auth_url) = env.var("OS_AUTH_URL") else {
        let paths = search_path(env, "clouds.yaml", "OS_CLIENT_CONFIG_FILE");
        return Err(ConfigError(format!(
            "no OpenStack credentials: set [openstack] cloud = \"<entry>\" (or OS_CLOUD) for a clouds.yaml entry (searched {}), or OS_AUTH_URL and the other OS_* variables (source an openrc file)",
            list(&paths)
        )));
    };
    let source = "the OS_* environment variables".to_string();
    let lookup = |k: &str| env.var(&format!("OS_{}", k.to_ascii_uppercase()));
    let auth_type = env.var("OS_AUTH_TYPE").unwrap_or_else(|| {
        if lookup("application_credential_secret").is_some() {
            "v3applicationcredential".into()
        } else {
            "password".into()
        }
    });
    let credentials = credentials(&auth_type, &lookup, &source)?;
    Ok(CloudConfig {
        auth_url,
        credentials,
        region: None,
        interface: "public".into(),
        cacert: None,
        source,
    })
}

fn credentials(
    auth_type: &str,
    a: &dyn Fn(&str) -> Option<String>,
    source: &str,
) -> Result<Credentials, ConfigError> {
    let domain = |prefix: &str, kind: &str| -> (Option<String>, Option<String>) {
        (
            a(&format!("{prefix}_domain_id")).or_else(|| a("domain_id")),
            a(&format!("{prefix}_domain_name"))
                .or_else(|| a("domain_name"))
                .or_else(|| {
                    // Keystone v3 needs a domain with names; the CLI defaults to "Default".
                    let _ = kind;
                    None
                }),
        )
    };
    let (udi, udn) = domain("user", "user");
    let user = Named {
        id: a("user_id"),
        name: a("username"),
        domain_id: udi,
        domain_name: udn,
    };
    match auth_type {
        "password" | "v3password" => {
            let (pdi, pdn) = domain("project", "project");
            let project = Named {
                id: a("project_id").or_else(|| a("tenant_id")),
                name: a("project_name").or_else(|| a("tenant_name")),
                domain_id: pdi,
                domain_name: pdn,
            };
            if user.is_empty() {
                return Err(ConfigError(format!(
                    "{source}: no user (username or user_id)"
                )));
            }
            let password = a("password").ok_or_else(|| {
                ConfigError(format!("{source}: no password for the password method"))
            })?;
            Ok(Credentials::Password {
                user,
                password: Secret(password),
                project,
            })
        }
        "v3applicationcredential" | "application_credential" => {
            let secret = a("application_credential_secret").ok_or_else(|| {
                ConfigError(format!("{source}: no application_credential_secret"))
            })?;
            let id = a("application_credential_id");
            let name = a("application_credential_name");
            if id.is_none() && (name.is_none() || user.is_empty()) {
                return Err(ConfigError(format!(
                    "{source}: an application credential needs application_credential_id, or application_credential_name with a user"
                )));
            }
            Ok(Credentials::ApplicationCredential {
                id,
                name,
                user,
                secret: Secret(secret),
            })
        }
        other => Err(ConfigError(format!(
            "{source}: auth_type {other:?} is not supported (use password or v3applicationcredential)"
        ))),
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
