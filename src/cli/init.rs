//! `acura-ha init --provider aws|openstack|static|local [FILE]`: writes a commented cluster file
//! for a target, filled with what can be found on this machine — the AWS region and profile as
//! the aws CLI resolves them (its config and credentials files: profile names and `region` only),
//! the OpenStack cloud from `OS_CLOUD` or `clouds.yaml`, the user's SSH key, and for `static` on
//! a terminal the nodes' names and addresses, asked for. It never writes a secret (credentials
//! stay where the CLIs keep them), checks the file with the same checks as `plan`, and never
//! overwrites a file.

mod found;
mod hosts;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use acura_ha_api::hint;

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
    /// Ask for the nodes' names and addresses (static) even when stdin is not a terminal
    /// (on a terminal, `--provider static` asks anyway)
    #[arg(long)]
    pub interactive: bool,
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
    if args.interactive && args.provider != Target::Static {
        return Err(Error::Usage(
            "--interactive asks for the nodes of --provider static; the other targets create their hosts".into(),
        ));
    }
    // Refused before any question is asked (and again, atomically, when the file is created).
    if std::fs::symlink_metadata(&args.file).is_ok() {
        return Err(exists(&args.file));
    }
    let stdin = std::io::stdin();
    let hosts = if args.provider == Target::Static && (args.interactive || stdin.is_terminal()) {
        hosts::ask(&mut stdin.lock(), &mut std::io::stderr(), &placeholder_lb())?
    } else {
        None
    };
    let text = render(&args, &Env::from_process(), hosts.as_ref())?;
    // The same checks as `plan`: a file `init` wrote always loads.
    config::parse(&args.file.display().to_string(), &text)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.file)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(&args.file),
            _ => FileError::Write {
                path: args.file.clone(),
                source: e,
            }
            .into(),
        })?;
    f.write_all(text.as_bytes())
        .map_err(FileError::write(&args.file))?;
    // The program as it can be typed (acura_ha_api::hint, set by the command line).
    eprintln!(
        "wrote {}: review admin_cidrs (your deploy host's address) and the lines marked `init:`, then run {}",
        args.file.display(),
        hint::program_command(&format!(
            "plan -c {}",
            hint::shell_word(&args.file.display().to_string())
        )),
    );
    Ok(EXIT_OK)
}

fn exists(file: &Path) -> Error {
    Error::Usage(format!(
        "{} exists: init never overwrites a file; name another: {}",
        file.display(),
        hint::program_command("init --provider … FILE")
    ))
}

/// The static template's NGINX host, kept when the prompt's answer is empty.
fn placeholder_lb() -> hosts::Host {
    config::parse("examples/static.toml", template(Target::Static))
        .ok()
        .and_then(|s| s.static_hosts?.lb)
        .map(|h| hosts::Host {
            name: h.name,
            address: h.address,
        })
        .unwrap_or(hosts::Host {
            name: "acura-lb".into(),
            address: std::net::IpAddr::from([192, 0, 2, 10]),
        })
}

/// What `init` may read from the machine (a struct, so tests give their own).
#[derive(Debug, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    /// The working directory, where the openstack CLI looks for `./clouds.yaml` first.
    pub cwd: PathBuf,
    pub aws_region: Option<String>,
    /// The variable `aws_region` came from.
    pub aws_region_var: &'static str,
    pub aws_profile: Option<String>,
    /// `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/config`, `~/.aws/credentials`).
    pub aws_config_file: Option<PathBuf>,
    pub aws_credentials_file: Option<PathBuf>,
    pub os_cloud: Option<String>,
    /// `OS_CLIENT_CONFIG_FILE`: the `clouds.yaml` the openstack CLI reads first.
    pub os_client_config_file: Option<PathBuf>,
    /// Where this build's stand-in archive is, for the local target.
    pub standin_archive: Option<PathBuf>,
}

impl Env {
    fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/archive");
        let (aws_region, aws_region_var) = match (var("AWS_REGION"), var("AWS_DEFAULT_REGION")) {
            (Some(r), _) => (Some(r), "AWS_REGION"),
            (None, Some(r)) => (Some(r), "AWS_DEFAULT_REGION"),
            (None, None) => (None, ""),
        };
        Env {
            home: path("HOME"),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            aws_region,
            aws_region_var,
            aws_profile: var("AWS_PROFILE").or_else(|| var("AWS_DEFAULT_PROFILE")),
            aws_config_file: path("AWS_CONFIG_FILE"),
            aws_credentials_file: path("AWS_SHARED_CREDENTIALS_FILE"),
            os_cloud: var("OS_CLOUD"),
            os_client_config_file: path("OS_CLIENT_CONFIG_FILE"),
            standin_archive: standin.is_dir().then_some(standin),
        }
    }
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `"a", "b"` for a comment.
fn names(list: &[String]) -> String {
    list.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
}

/// The template with what was found (and, for `static`, what was typed) filled in.
pub fn render(args: &Args, env: &Env, typed: Option<&hosts::Answers>) -> Result<String, Error> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("acura-{}", provider_name(args.provider)));
    let aws = (args.provider == Target::Aws).then(|| found::aws(env));
    let os = (args.provider == Target::Openstack).then(|| found::clouds(env));
    let mut lines: Vec<String> = Vec::new();
    let mut section = String::new();
    let mut skipping_list = false;
    for line in template(args.provider).lines() {
        if skipping_list {
            skipping_list = line.trim() != "]";
            continue;
        }
        if let Some(s) = line
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.split(']').next())
            && !line.contains('=')
        {
            section = s.to_string();
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let set = |value: &str, note: &str| format!("{key} = {}{note}", q(value));
        let l = match (section.as_str(), key) {
            ("cluster", "name") => set(&name, ""),
            (_, "ssh_private_key") => match ssh_key(env) {
                Some(k) => set(&k, "   # init: found in ~/.ssh"),
                None => line.to_string(),
            },
            (_, "public_key_file") => match ssh_key(env) {
                Some(k) => set(&format!("{k}.pub"), ""),
                None => line.to_string(),
            },
            ("aws", "region") => {
                let aws = aws.as_ref().expect("aws found");
                let mut out = match &aws.region {
                    Some((r, from)) => set(r, &format!("   # init: {from}")),
                    None => format!(
                        "{line}   # init: no region in AWS_REGION, AWS_DEFAULT_REGION or the profile in {}: set the one to deploy to",
                        paths(&aws.looked)
                    ),
                };
                match &aws.profile {
                    Some((p, why)) => {
                        out.push_str(&format!("\nprofile = {}   # init: {why}", q(p)));
                        if !aws.others.is_empty() {
                            out.push_str(&format!(
                                "\n# init: the aws CLI's other profiles: {}",
                                names(&aws.others)
                            ));
                        }
                    }
                    None if !aws.others.is_empty() => out.push_str(&format!(
                        "\n# profile = \"…\"   # init: the aws CLI's profiles are {}: name one here or in AWS_PROFILE",
                        names(&aws.others)
                    )),
                    None => out.push_str(&format!(
                        "\n# profile = \"…\"   # init: no profile in {}: `aws configure` makes one",
                        paths(&aws.looked)
                    )),
                }
                out
            }
            ("openstack", "cloud") => {
                let os = os.as_ref().expect("clouds found");
                let mut out = match &os.cloud {
                    Some((c, why)) => set(c, &format!("   # init: {why}")),
                    None => format!(
                        "{line}   # init: no OS_CLOUD and no cloud in a clouds.yaml (looked in {}): save your cloud's clouds.yaml there",
                        paths(&os.looked)
                    ),
                };
                if let (false, Some(f)) = (os.others.is_empty(), &os.file) {
                    out.push_str(&format!(
                        "\n# init: the other clouds of {}: {}",
                        f.display(),
                        names(&os.others)
                    ));
                }
                out
            }
            ("nodes", "count") if typed.is_some() => format!(
                "count = {}   # init: the nodes typed at the prompt",
                typed.map_or(0, |t| t.nodes.len())
            ),
            ("static", "nodes") if typed.is_some() => {
                skipping_list = line.contains('[') && !line.contains(']');
                let mut out = vec!["nodes = [".to_string()];
                for h in typed.map(|t| t.nodes.as_slice()).unwrap_or_default() {
                    out.push(format!(
                        "  {{ name = {}, address = {} }},",
                        q(&h.name),
                        q(&h.address.to_string())
                    ));
                }
                out.push("]".into());
                out.join("\n")
            }
            ("static", "lb") => match typed.and_then(|t| t.lb.as_ref()) {
                Some(h) => format!(
                    "lb = {{ name = {}, address = {} }}",
                    q(&h.name),
                    q(&h.address.to_string())
                ),
                None if typed.is_some() => {
                    format!("{line}   # init: a placeholder: the host NGINX runs on")
                }
                None => line.to_string(),
            },
            // The local resolver answers the LB host's name, `<cluster>-lb`, for the cluster's life.
            ("preflight", "dns_name") if args.provider == Target::Local => {
                set(&format!("{name}-lb"), "")
            }
            (_, "archive") if args.provider == Target::Local => match &env.standin_archive {
                Some(a) => set(&a.display().to_string(), "   # the stand-in archive"),
                None => set("hystax-ha-archive.tar.gz", ""),
            },
            _ => line.to_string(),
        };
        lines.push(l);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn paths(list: &[PathBuf]) -> String {
    list.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
