//! The command line: one file per subcommand (its arguments and its `exec`), after cargo's
//! `commands/*.rs`. A subcommand appears here only once it works.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{self, LoadedConfig};
use crate::error::Error;
use crate::output::{Format, Ui};
use crate::state::StateStore;

mod completions;
mod down;
mod init;
mod janitor;
mod man;
mod node;
mod plan;
mod preflight;
mod prompt;
mod render;
mod state;
mod status;
mod up;
mod update;

/// Exit codes (documented in the README).
pub const EXIT_OK: u8 = 0;
/// Any error: the message names what failed and its code (`error[AH…]`).
pub const EXIT_ERROR: u8 = 1;
/// `plan` against an existing state: there are changes (as `terraform plan -detailed-exitcode`).
pub const EXIT_CHANGES: u8 = 2;
/// `status`: the cluster answered, but something is not healthy.
pub const EXIT_DEGRADED: u8 = 3;
/// The command line itself is wrong (unknown flag, missing argument).
pub const EXIT_USAGE: u8 = 64;
/// Interrupted (Ctrl-C); the state holds what was done.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "acura-ha",
    version,
    about = "Deploy a Hystax Acura HA cluster on AWS, OpenStack, your own hosts, or this machine",
    propagate_version = true,
    after_help = "Exit codes: 0 success, 1 error, 2 `plan` found changes (when a state exists), 3 `status` found the cluster degraded, 64 usage error, 130 interrupted."
)]
pub struct Cli {
    /// Print more: the cloud SDK's own error structure (AWS) beside the one-line cause
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every resource `up` would create and every bootstrap step; with a state, only the difference
    Plan(plan::Args),
    /// Create the hosts and load balancer, then install Acura on them (asks first unless --yes)
    Up(up::Args),
    /// Show each host (SSH, preflight), Kubernetes, and each listener
    Status(status::Args),
    /// Log in to every host and check it against the minimums, changing nothing
    Preflight(preflight::Args),
    /// Delete everything the cluster owns (asks first unless --yes)
    Down(down::Args),
    /// Day 2: write a new overlay list to Acura's store and redeploy with update_cluster=true
    Update(update::Args),
    /// Day 2: remove a dead node, add a node, or replace one
    #[command(subcommand)]
    Node(node::What),
    /// Delete whole test clusters older than an age, found by their tags (AWS)
    Janitor(janitor::Args),
    /// Print a file the tool generates: the NGINX config, the ha_env_file, or the security-group audit table
    #[command(subcommand)]
    Render(render::What),
    /// Inspect the state file, or remove a lock a dead run left behind
    #[command(subcommand)]
    State(state::What),
    /// Write a commented cluster file for a target, filled with what this machine knows
    Init(init::Args),
    /// Print a shell completion script
    Completions(completions::Args),
    /// Print the manual page (roff; `acura-ha man | man -l -`)
    Man(man::Args),
}

/// `-c FILE` and where the state lives: every command that works on a cluster takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The cluster file (TOML)
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "ACURA_HA_CONFIG"
    )]
    pub config: PathBuf,
    /// Where state files live [default: .acura-ha/ next to the cluster file]
    #[arg(long, value_name = "DIR", env = "ACURA_HA_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ClusterArgs {
    /// The cluster file as day-2 commands left the cluster (their node set and overlay list
    /// are in the state), and its state store.
    pub fn load(&self) -> Result<(LoadedConfig, StateStore), Error> {
        let mut cfg = config::load(&self.config)?;
        let store = StateStore::for_config(&cfg, self.state_dir.as_deref());
        if let Some(state) = store.load()? {
            state.apply_day2(&mut cfg.spec);
        }
        Ok((cfg, store))
    }
}

/// `--yes`: for every command that changes or deletes something.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct YesArg {
    /// Apply without asking (required when there is no terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `-K`: the sudo password of the SSH user.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct BecomeArgs {
    /// Ask for the sudo password of the SSH user (the guide's -K); or set ACURA_HA_BECOME_PASSWORD
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
}

impl BecomeArgs {
    /// The sudo password (the guide's `-K`): asked for, or from `ACURA_HA_BECOME_PASSWORD`.
    /// The event stream hides it from then on, whatever line it would turn up in.
    pub fn password(&self) -> Result<Option<String>, Error> {
        let pw = if self.ask_become_pass {
            rpassword::prompt_password("BECOME password: ")
                .map(Some)
                .map_err(|e| Error::refused(format!("cannot read the become password: {e}")))?
        } else {
            std::env::var("ACURA_HA_BECOME_PASSWORD").ok()
        };
        crate::events::hide(&crate::bootstrap::become_vars(pw.as_deref()));
        // Every command the tool itself runs on a host (day 2's kubectl and kubeadm, NGINX,
        // post-checks) becomes root with it: `-K` serves `update` and `node` as it serves `up`.
        crate::bootstrap::sudo::install(pw.as_deref());
        Ok(pw)
    }
}

/// `--output text|json`: the command's result on stdout; human progress on stderr.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Text, or JSON on stdout: one document for a query, one event per line for a change (the human account goes to stderr)
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

impl OutputArgs {
    /// The output path for a command that never asks.
    pub fn ui(&self) -> Ui {
        self.ui_asking(YesArg { yes: false })
    }

    /// The output path for a command that asks before changing (answered by `--yes`).
    pub fn ui_asking(&self, yes: YesArg) -> Ui {
        Ui::new(
            self.output,
            Box::new(prompt::TerminalPrompt { yes: yes.yes }),
        )
    }
}

/// `--timings`: for every command that changes a cluster.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TimingsArg {
    /// Write the run's timeline (every resource, step and wait) as HTML and JSON next to its logs
    #[arg(long)]
    pub timings: bool,
}

/// What every day-2 command takes: the cluster, `--yes`, `-K`, `--output` and `--timings`.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub yes: YesArg,
    #[command(flatten)]
    pub become_: BecomeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub timings: TimingsArg,
}

impl ChangeArgs {
    pub fn ui(&self) -> Ui {
        self.output.ui_asking(self.yes)
    }
}

/// The clap definition, for completions and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            });
        }
    };
    acura_ha_api::verbose::set(cli.verbose);
    // Every hint's command names this program and this run's cluster file (#15.2).
    let cluster = cli.command.cluster();
    acura_ha_api::hint::set_invocation(crate::engine::invocation(
        cluster.map(|c| c.config.as_path()),
        cluster.and_then(|c| c.state_dir.as_deref()),
    ));
    let streams = cli.command.streams();
    let mut timings_of = None;
    if let Some(s) = &streams
        && (s.json || s.timings)
    {
        crate::events::start_with(s.name, Some(&s.cluster.config), s.json, s.timings);
        timings_of = s.timings.then(|| s.cluster.clone());
    }
    let code = match run(cli) {
        Ok(code) => {
            crate::events::finish(code, None);
            code
        }
        Err(e) => {
            report(&e);
            let code = match e {
                Error::Interrupted => EXIT_INTERRUPTED,
                _ => EXIT_ERROR,
            };
            crate::events::finish(code, Some((e.code(), e.to_string(), e.help())));
            code
        }
    };
    if let Some(cluster) = timings_of {
        write_timings(&cluster);
    }
    ExitCode::from(code)
}

/// `--timings`: the timeline of the run's events, next to its logs; the paths on stderr. A
/// failure to write it is a warning: the run's own outcome stands.
fn write_timings(cluster: &ClusterArgs) {
    let written = config::load(&cluster.config)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            let dir = StateStore::for_config(&cfg, cluster.state_dir.as_deref()).cluster_dir();
            crate::timings::write(&dir, &crate::events::collected()).map_err(|e| e.to_string())
        });
    match written {
        Ok((json, html)) => eprintln!("timings: {} (JSON: {})", html.display(), json.display()),
        Err(e) => eprintln!("warning: the timings were not written: {e}"),
    }
}

/// What a command that changes a cluster streams: its name, its cluster, and where to.
struct Streams<'a> {
    name: &'static str,
    cluster: &'a ClusterArgs,
    /// `--output json`: the JSON Lines on stdout.
    json: bool,
    /// `--timings`: the lines collected for the timeline.
    timings: bool,
}

impl Command {
    /// The cluster this command works on (`-c FILE`, `--state-dir`), if it takes one.
    fn cluster(&self) -> Option<&ClusterArgs> {
        match self {
            Command::Plan(a) => Some(&a.cluster),
            Command::Up(a) => Some(&a.cluster),
            Command::Status(a) => Some(&a.cluster),
            Command::Preflight(a) => Some(&a.cluster),
            Command::Down(a) => Some(&a.cluster),
            Command::Janitor(a) => Some(&a.cluster),
            Command::Update(a) => Some(&a.common.cluster),
            Command::Node(node::What::Remove(r) | node::What::Replace(r)) => {
                Some(&r.common.cluster)
            }
            Command::Node(node::What::Add(a)) => Some(&a.common.cluster),
            Command::Render(
                render::What::Nginx { cluster, .. }
                | render::What::Inventory { cluster }
                | render::What::SecurityGroup { cluster, .. },
            ) => Some(cluster),
            Command::State(
                state::What::Show { cluster, .. }
                | state::What::Unlock { cluster, .. }
                | state::What::Migrate { cluster, .. },
            ) => Some(cluster),
            Command::Init(_) | Command::Completions(_) | Command::Man(_) => None,
        }
    }

    /// The commands that change a cluster stream events with `--output json` (as
    /// `terraform apply -json`) and collect them for `--timings`. Queries (`plan`, `status`, …)
    /// print one document instead.
    fn streams(&self) -> Option<Streams<'_>> {
        let none = TimingsArg { timings: false };
        let (name, output, cluster, timings) = match self {
            Command::Up(a) => ("up", a.output, &a.cluster, a.timings),
            Command::Down(a) => ("down", a.output, &a.cluster, a.timings),
            Command::Janitor(a) => ("janitor", a.output, &a.cluster, none),
            Command::Update(a) => (
                "update",
                a.common.output,
                &a.common.cluster,
                a.common.timings,
            ),
            Command::Node(node::What::Remove(r)) => (
                "node remove",
                r.common.output,
                &r.common.cluster,
                r.common.timings,
            ),
            Command::Node(node::What::Replace(r)) => (
                "node replace",
                r.common.output,
                &r.common.cluster,
                r.common.timings,
            ),
            Command::Node(node::What::Add(a)) => (
                "node add",
                a.common.output,
                &a.common.cluster,
                a.common.timings,
            ),
            _ => return None,
        };
        Some(Streams {
            name,
            cluster,
            json: output.output == Format::Json,
            timings: timings.timings,
        })
    }
}

/// Runs an async command; Ctrl-C, SIGTERM (a cancelled CI job, `kill`) and SIGHUP (a dropped SSH
/// session) end it as an error — so locks are released, child processes are dropped and the
/// state says what was done — not by killing the process mid-write.
pub fn block_on<T>(fut: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return Err(Error::Usage("cannot install the signal handlers".into()));
        };
        tokio::select! {
            r = fut => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
            _ = term.recv() => Err(Error::Interrupted),
            _ = hup.recv() => Err(Error::Interrupted),
        }
    })
}

pub fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Plan(args) => plan::exec(args),
        Command::Up(args) => up::exec(args),
        Command::Status(args) => status::exec(args),
        Command::Preflight(args) => preflight::exec(args),
        Command::Down(args) => down::exec(args),
        Command::Janitor(args) => janitor::exec(args),
        Command::Update(args) => update::exec(args),
        Command::Node(what) => node::exec(what),
        Command::Render(what) => render::exec(what),
        Command::State(what) => state::exec(what),
        Command::Completions(args) => completions::exec(args),
        Command::Init(args) => init::exec(args),
        Command::Man(args) => man::exec(args),
    }
}

fn report(e: &Error) {
    eprintln!("error[{}]: {e}", e.code());
    if let Some(help) = e.help() {
        eprintln!("  help: {help}");
    }
}
