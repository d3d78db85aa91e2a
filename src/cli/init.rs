//! `acura-ha init --provider aws|openstack|static|local [FILE]`: writes a commented cluster file
//! for a target, filled with what can be found on this machine — the AWS region and profile as
//! the aws CLI resolves them, the OpenStack cloud from `OS_CLOUD` or `clouds.yaml`, the user's SSH
//! key. It never writes a secret (credentials stay where the CLIs keep them), checks the file with
//! the same checks as `plan`, and never overwrites a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::EXIT_OK;
use crate::config;
use crate::error::Error;
use crate::files::FileError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Aws,
    Openstack,
    Static,
    Local,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The target to deploy to
    #[arg(long, value_enum)]
    pub provider: Target,
    /// The cluster's name [default: acura-<provider>]
    #[arg(long)]
    pub name: Option<String>,
    /// The file to write (never overwritten)
    #[arg(default_value = "cluster.toml")]
    pub file: PathBuf,
}

/// The examples are the templates: one source for the docs, the tests and `init`.
fn template(t: Target) -> &'static str {
    match t {
        Target::Aws => include_str!("../../examples/aws.toml"),
        Target::Openstack => include_str!("../../examples/openstack.toml"),
        Target::Static => include_str!("../../examples/static.toml"),
        Target::Local => include_str!("../../examples/local.toml"),
    }
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let text = render(&args, &Env::from_process())?;
    // The same checks as `plan`: a file `init` wrote always loads.
    config::parse(&args.file.display().to_string(), &text)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.file)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage(format!(
                "{} exists: init never overwrites a file; name another (acura-ha init --provider … FILE)",
                args.file.display()
            )),
            _ => FileError::Write {
                path: args.file.clone(),
                source: e,
            }
            .into(),
        })?;
    f.write_all(text.as_bytes())
        .map_err(FileError::write(&args.file))?;
    eprintln!(
        "wrote {}: review admin_cidrs (your deploy host's address) and the lines marked `init:`, then run `acura-ha plan -c {}`",
        args.file.display(),
        args.file.display()
    );
    Ok(EXIT_OK)
}

/// What `init` may read from the machine (a struct, so tests give their own).
#[derive(Debug, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub aws_region: Option<String>,
    pub aws_profile: Option<String>,
    pub os_cloud: Option<String>,
    /// Where this build's stand-in archive is, for the local target.
    pub standin_archive: Option<PathBuf>,
}

impl Env {
    fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/archive");
        Env {
            home: std::env::var_os("HOME").map(PathBuf::from),
            aws_region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            aws_profile: var("AWS_PROFILE"),
            os_cloud: var("OS_CLOUD"),
            standin_archive: standin.is_dir().then_some(standin),
        }
    }
}

/// The template with what was found filled in.
pub fn render(args: &Args, env: &Env) -> Result<String, Error> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("acura-{}", provider_name(args.provider)));
    let mut lines: Vec<String> = Vec::new();
    for line in template(args.provider).lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let set = |value: &str, note: &str| format!("{key} = {value:?}{note}");
        let l = match key {
            "name" if line.starts_with("name") => set(&name, ""),
            "ssh_private_key" => match ssh_key(env) {
                Some(k) => set(&k, "   # init: found in ~/.ssh"),
                None => line.to_string(),
            },
            "public_key_file" => match ssh_key(env) {
                Some(k) => set(&format!("{k}.pub"), ""),
                None => line.to_string(),
            },
            "region" if args.provider == Target::Aws => match aws_region(env) {
                Some(r) => set(&r, "   # init: as the aws CLI resolves it"),
                None => format!("{line}   # init: no region found in AWS_REGION or ~/.aws/config"),
            },
            "cloud" if args.provider == Target::Openstack => match os_cloud(env) {
                Some(c) => set(&c, "   # init: from OS_CLOUD or clouds.yaml"),
                None => format!("{line}   # init: no clouds.yaml entry found"),
            },
            // The local resolver answers the LB host's name, `<cluster>-lb`, for the cluster's life.
            "dns_name" if args.provider == Target::Local => set(&format!("{name}-lb"), ""),
            "archive" if args.provider == Target::Local => match &env.standin_archive {
                Some(a) => set(&a.display().to_string(), "   # the stand-in archive"),
                None => set("hystax-ha-archive.tar.gz", ""),
            },
            _ => line.to_string(),
        };
        lines.push(l);
        if key == "region"
            && args.provider == Target::Aws
            && let Some(p) = &env.aws_profile
        {
            lines.push(format!("profile = {p:?}   # init: AWS_PROFILE"));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn provider_name(t: Target) -> &'static str {
    match t {
        Target::Aws => "aws",
        Target::Openstack => "openstack",
        Target::Static => "static",
        Target::Local => "local",
    }
}

/// The user's first private key of a kind the tool reads, as `~/.ssh/…`.
fn ssh_key(env: &Env) -> Option<String> {
    let home = env.home.as_ref()?;
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .into_iter()
        .find(|k| home.join(".ssh").join(k).is_file())
        .map(|k| format!("~/.ssh/{k}"))
}

/// The region as the aws CLI resolves it: the environment, then the profile's `region` in
/// `~/.aws/config` (`[default]` or `[profile NAME]`).
fn aws_region(env: &Env) -> Option<String> {
    if let Some(r) = &env.aws_region {
        return Some(r.clone());
    }
    let path = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".aws/config")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let section = match env.aws_profile.as_deref() {
        None | Some("default") => "[default]".to_string(),
        Some(p) => format!("[profile {p}]"),
    };
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "region"
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// `OS_CLOUD`, else the first cloud of the first `clouds.yaml` found where the openstack CLI
/// looks (./, ~/.config/openstack/, /etc/openstack/).
fn os_cloud(env: &Env) -> Option<String> {
    if let Some(c) = &env.os_cloud {
        return Some(c.clone());
    }
    let mut places = vec![PathBuf::from("clouds.yaml")];
    if let Some(h) = &env.home {
        places.push(h.join(".config/openstack/clouds.yaml"));
    }
    places.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    let text = places
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())?;
    // The first key one level under `clouds:` (no YAML parser needed for one name).
    let mut inside = false;
    for line in text.lines() {
        if line.trim_end() == "clouds:" {
            inside = true;
            continue;
        }
        if !inside || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            break;
        }
        if let Some(name) = line.trim().strip_suffix(':') {
            return Some(name.trim_matches(['"', '\'']).to_string());
        }
    }
    None
}
