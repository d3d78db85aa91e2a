//! The app-wide error: it only aggregates what each layer owns (the cluster file, files and the
//! state, the providers, the bootstrap, day 2), with `#[source]`, and keeps their stable codes
//! (`AH…`, listed in the README). Every error exits 1; see `cli::exit` for the other codes.

use acura_ha_api::provider::ProviderError;

use crate::bootstrap::BootstrapError;
use crate::config::ConfigError;
use crate::day2::Day2Error;
use crate::files::FileError;
use crate::output::Refused;
use crate::state::StateError;
use crate::targets::NotInBuild;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    File(#[from] FileError),

    #[error(transparent)]
    State(#[from] StateError),

    #[error(transparent)]
    Provider(#[from] ProviderError),

    #[error(transparent)]
    NotInBuild(#[from] NotInBuild),

    #[error("cannot render the NGINX config: {0}")]
    Render(#[from] acura_ha_nginx::RenderError),

    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Refused(#[from] Refused),

    #[error(
        "interrupted: the state holds everything done so far; run the same command again to continue"
    )]
    Interrupted,

    /// Boxed: the bootstrap's and day 2's errors carry SSH detail, and every `Result` of the
    /// tool would otherwise be as large as the largest of them.
    #[error(transparent)]
    Bootstrap(Box<BootstrapError>),

    #[error(transparent)]
    Day2(Box<Day2Error>),
}

impl From<BootstrapError> for Error {
    fn from(e: BootstrapError) -> Self {
        Error::Bootstrap(Box::new(e))
    }
}

impl From<Day2Error> for Error {
    fn from(e: Day2Error) -> Self {
        Error::Day2(Box::new(e))
    }
}

crate::from_bootstrap_stages!(Error);

/// The AWS provider's credentials and endpoint failures (its resources
/// `acura_ha_aws::credentials::{RESOURCE, REGION_RESOURCE}`) have codes of their own: a cause to
/// fix before any call, not a cloud call's answer about a resource. A refused permission
/// (`…::PERMISSIONS_RESOURCE`) stays AH301: a call the cloud answered.
fn aws_cause(e: &ProviderError) -> Option<&'static str> {
    match e {
        ProviderError::Cloud { resource, .. } => match resource.as_str() {
            "AWS credentials" => Some("AH304"),
            "AWS endpoint" => Some("AH305"),
            _ => None,
        },
        _ => None,
    }
}

impl Error {
    /// A refusal with its reason.
    pub fn refused(why: impl Into<String>) -> Self {
        Error::Refused(Refused(why.into()))
    }

    /// The stable code printed as `error[AH…]`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(e) => e.code(),
            Error::File(e) => e.code(),
            Error::State(e) => e.code(),
            Error::Provider(e) => aws_cause(e).unwrap_or_else(|| crate::targets::error_code(e)),
            Error::Usage(_) | Error::NotInBuild(_) => "AH003",
            Error::Refused(_) => "AH004",
            Error::Interrupted => "AH005",
            Error::Render(_) => "AH400",
            Error::Bootstrap(e) => e.code(),
            Error::Day2(e) => e.code(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.help(),
            Error::State(e) => e.help(),
            Error::Bootstrap(e) => e.help(),
            Error::Day2(e) => e.help(),
            _ => None,
        }
    }
}
