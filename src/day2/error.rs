//! Day 2's errors: what failed on a live node, and what its steps met below (the state, files,
//! the bootstrap, the provider). The app-wide error wraps this one whole.

use acura_ha_api::provider::ProviderError;

use crate::bootstrap::BootstrapError;
use crate::bootstrap::ssh::SshError;
use crate::files::FileError;
use crate::state::StateError;
use crate::targets::NotInBuild;

#[derive(Debug, thiserror::Error)]
pub enum Day2Error {
    /// Boxed (as the bootstrap's below): SSH errors carry detail that would make every day-2
    /// `Result` large.
    #[error("{0}")]
    Ssh(Box<SshError>),
    #[error("{step} on {host} failed: {message}")]
    Command {
        host: String,
        step: String,
        message: String,
    },
    #[error("{step} on {host}: cannot read the output: {message}")]
    Parse {
        host: String,
        step: String,
        message: String,
    },
    #[error("no live node answers (tried {tried}): {why}")]
    NoLiveNode { tried: String, why: String },
    /// The command cannot run as asked (no state yet, a flag for another provider, …).
    #[error("{0}")]
    Usage(String),
    /// The change would harm the cluster, or was not confirmed.
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Bootstrap(Box<BootstrapError>),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    NotInBuild(#[from] NotInBuild),
    /// A node command failed after it had removed a node (boxed: it holds the cause).
    #[error(transparent)]
    Unfinished(Box<Unfinished>),
}

/// A node command that failed after it had removed a node: the cluster runs short until the
/// command in `finish` adds the new one (the state's pending record makes it resume).
#[derive(Debug, thiserror::Error)]
#[error(
    "{cause}\n  cluster {cluster:?} now stands at {} node(s): {}; removed: {}; {new} is not a member yet",
    standing.len(),
    standing.join(", "),
    removed.join(", ")
)]
pub struct Unfinished {
    pub cause: Day2Error,
    pub cluster: String,
    /// The nodes left, in the state's order.
    pub standing: Vec<String>,
    pub removed: Vec<String>,
    /// The node being added.
    pub new: String,
    /// The exact command that finishes the job.
    pub finish: String,
}

impl From<SshError> for Day2Error {
    fn from(e: SshError) -> Self {
        Day2Error::Ssh(Box::new(e))
    }
}

impl From<BootstrapError> for Day2Error {
    fn from(e: BootstrapError) -> Self {
        Day2Error::Bootstrap(Box::new(e))
    }
}

impl From<crate::output::Refused> for Day2Error {
    fn from(r: crate::output::Refused) -> Self {
        Day2Error::Refused(r.0)
    }
}

crate::from_bootstrap_stages!(Day2Error);

impl Day2Error {
    /// The stable code printed as `error[AH…]`.
    pub fn code(&self) -> &'static str {
        match self {
            Day2Error::Ssh(_) => "AH500",
            Day2Error::NoLiveNode { .. } => "AH600",
            Day2Error::Command { .. } => "AH601",
            Day2Error::Parse { .. } => "AH602",
            Day2Error::Usage(_) | Day2Error::NotInBuild(_) => "AH003",
            Day2Error::Refused(_) => "AH004",
            Day2Error::State(e) => e.code(),
            Day2Error::File(e) => e.code(),
            Day2Error::Bootstrap(e) => e.code(),
            Day2Error::Provider(e) => crate::targets::error_code(e),
            // What failed keeps its code: the standing is context, not another failure.
            Day2Error::Unfinished(u) => u.cause.code(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            Day2Error::NoLiveNode { .. } => Some(format!("a day-2 command needs one node that answers SSH and runs kubectl: check the hosts with {}", acura_ha_api::hint::command("status"))),
            Day2Error::Ssh(_) | Day2Error::Command { .. } | Day2Error::Parse { .. } => Some("what was done is recorded in the state: fix the cause and run the same command again to continue".into()),
            Day2Error::State(e) => e.help(),
            Day2Error::Bootstrap(e) => e.help(),
            // Not the cause's own help: below day 2 it speaks of `up`, which would not finish
            // this job.
            Day2Error::Unfinished(u) => Some(format!(
                "fix the cause above, then finish the job (it resumes adding {}): {}",
                u.new, u.finish
            )),
            _ => None,
        }
    }
}
