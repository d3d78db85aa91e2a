//! What a failed AWS call said: its error code (matched on, never the message), its message and
//! its request ID, tied to the resource it concerned.
//!
//! Four kinds of failure are not about that resource and are told as what they are, in one
//! line naming the call, the region or endpoint, the request ID and what to check: a refused
//! permission (`UnauthorizedOperation`, `AccessDenied`: resource `AWS permissions`), refused
//! credentials (`AuthFailure`, `InvalidClientTokenId`, …: `AWS credentials`), an endpoint that
//! cannot be reached (connect, DNS or timeout: `AWS endpoint`) and an endpoint of another region
//! (`AWS endpoint`: the one case read from the message, as its code, `SignatureDoesNotMatch`,
//! also means a wrong secret). Never the SDK's `Debug`
//! structure (with `-v`, or `ACURA_HA_AWS_DEBUG` set, it goes to stderr).

use std::sync::RwLock;

use acura_ha_api::provider::ProviderError;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::RequestId;

/// The `resource` of a [`ProviderError::Cloud`] about credentials: the app gives it its own
/// code (AH304).
pub const RESOURCE: &str = "AWS credentials";
/// The `resource` of a missing region and of an endpoint that cannot be reached (AH305).
pub const REGION_RESOURCE: &str = "AWS endpoint";
/// The `resource` of a call the identity may not make (AH301, as any refused call).
pub const PERMISSIONS_RESOURCE: &str = "AWS permissions";

/// Prints the SDK's own error structure with `-v` (`acura_ha_api::verbose`) or
/// `ACURA_HA_AWS_DEBUG` set (never otherwise: it is long, nested and says nothing the one-line
/// cause does not).
pub(crate) fn debug(what: &str, e: &dyn std::fmt::Debug) {
    if acura_ha_api::verbose::on()
        || std::env::var_os("ACURA_HA_AWS_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
    {
        eprintln!("[  aws ] {what}: {e:?}");
    }
}

/// Error codes that mean "this identity may not do that".
const DENIED: [&str; 5] = [
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedAccess",
    "Forbidden",
];

/// Error codes that mean "these credentials are not (or no longer) good".
const BAD_CREDENTIALS: [&str; 9] = [
    "AuthFailure",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "UnrecognizedClientException",
    "InvalidToken",
];

/// How a failure is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The cloud's answer about the resource.
    Service,
    Denied,
    BadCredentials,
    Unreachable,
    /// Credentials that resolved before the run stopped resolving (an SSO session that ended).
    CredentialsGone,
    /// The endpoint serves another region than the one the request was signed for
    /// (`SignatureDoesNotMatch: Credential should be scoped to a valid region, not '…'`; S3's
    /// `AuthorizationHeaderMalformed: … the region '…' is wrong; expecting '…'`).
    WrongRegion,
}

#[derive(Debug, Clone)]
pub struct CloudError {
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    /// The API call (`DescribeInstanceTypes`).
    pub operation: String,
    pub service: Service,
    pub class: Class,
}

/// The services whose errors are mapped here: their names in messages, IAM and endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Elb,
    S3,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "EC2",
            Service::Elb => "ELBv2",
            Service::S3 => "S3",
        }
    }
    /// The IAM action prefix and the endpoint's host label.
    fn iam(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Elb => "elasticloadbalancing",
            Service::S3 => "s3",
        }
    }
    fn endpoint_var(self) -> &'static str {
        match self {
            Service::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Service::Elb => "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            Service::S3 => "AWS_ENDPOINT_URL_S3",
        }
    }
}

/// Where the calls go: set when the credentials resolved (`credentials::load`).
/// Process-wide because the errors are converted at every call site, which holds the call's
/// error but not the client; a run talks to one region.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub region: String,
    /// `AWS_ENDPOINT_URL` (or the profile's `endpoint_url`), when set.
    pub endpoint_url: Option<String>,
}

static TARGET: RwLock<Option<Target>> = RwLock::new(None);

pub(crate) fn set_target(t: Target) {
    if let Ok(mut slot) = TARGET.write() {
        *slot = Some(t);
    }
}

fn target() -> Target {
    TARGET
        .read()
        .ok()
        .and_then(|t| t.clone())
        .unwrap_or_else(|| Target {
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "?".into()),
            endpoint_url: None,
        })
}

/// The endpoint `service`'s calls go to, as the SDK picks it.
fn endpoint(service: Service, t: &Target) -> String {
    std::env::var(service.endpoint_var())
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| t.endpoint_url.clone())
        .unwrap_or_else(|| format!("https://{}.{}.amazonaws.com", service.iam(), t.region))
}

/// The messages of `e` and its sources, joined by `: ` (a repeated message once), on one line:
/// what `DisplayErrorContext` says without the `Debug` structure it appends.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string().replace(['\n', '\r'], " ");
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// `DescribeInstanceTypes` from `aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesError`.
fn operation_of<E>() -> String {
    let full = std::any::type_name::<E>();
    let last = full.rsplit("::").next().unwrap_or(full);
    last.strip_suffix("Error").unwrap_or(last).to_string()
}

/// How `e` is told, before it is turned into the service's error type.
fn class_of<E, R>(e: &SdkError<E, R>) -> Class
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match e {
        SdkError::TimeoutError(_) => Class::Unreachable,
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Class::Unreachable,
        SdkError::DispatchFailure(d) if d.is_other() => {
            let text = chain(e).to_ascii_lowercase();
            if text.contains("credential") || text.contains("identity") {
                Class::CredentialsGone
            } else {
                Class::Unreachable
            }
        }
        _ if e.message().is_some_and(is_wrong_region) => Class::WrongRegion,
        _ => match e.code() {
            Some(c) if DENIED.contains(&c) => Class::Denied,
            Some(c) if BAD_CREDENTIALS.contains(&c) => Class::BadCredentials,
            _ => Class::Service,
        },
    }
}

/// Whether the cloud's message says the request was signed for a region the endpoint does not
/// serve.
fn is_wrong_region(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("scoped to a valid region") || (m.contains("region '") && m.contains("expecting '"))
}

/// The region the cloud says it expects (`expecting 'eu-west-1'`), when it says.
fn expected_region(message: &str) -> Option<&str> {
    let rest = &message[message.find("expecting '")? + "expecting '".len()..];
    Some(&rest[..rest.find('\'')?])
}

/// The short cause of a failure that never got an answer.
fn transport_cause<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let text = chain(e);
    // "dispatch failure: io error: …": the first two say nothing to a person.
    let text = text
        .strip_prefix("dispatch failure: ")
        .unwrap_or(&text)
        .to_string();
    ["io error: ", "other: ", "timeout: "]
        .iter()
        .fold(text, |t, p| {
            t.strip_prefix(p).map(String::from).unwrap_or(t)
        })
}

impl CloudError {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn not_found(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c.ends_with(".NotFound") || c.ends_with("NotFound") || c == "InvalidGroup.NotFound"
        })
    }

    /// The SDK error `e` of a call to `service`, told by its [`Class`].
    pub fn from_sdk<E, R>(service: Service, e: &SdkError<E, R>) -> CloudError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let class = class_of(e);
        if class != Class::Service {
            debug(&operation_of::<E>(), e);
        }
        let (code, message) = match class {
            Class::Unreachable | Class::CredentialsGone => (None, transport_cause(e)),
            _ => (
                e.code().map(String::from),
                e.message()
                    .map(|m| m.replace(['\n', '\r'], " "))
                    .unwrap_or_else(|| chain(e)),
            ),
        };
        CloudError {
            code,
            message,
            request_id: e.meta().request_id().map(String::from),
            operation: operation_of::<E>(),
            service,
            class,
        }
    }

    /// The one line that says what went wrong with the call, without the resource it was
    /// about (the state backend adds its bucket). `None` for an ordinary answer of the cloud.
    pub fn explain(&self) -> Option<String> {
        let t = target();
        let op = &self.operation;
        let code = self.code.as_deref().unwrap_or("error");
        // Each case adds sentences of its own after the cloud's message.
        let message = self.message.trim_end().trim_end_matches('.');
        match self.class {
            Class::Service => None,
            Class::Denied => Some(format!(
                "{} {op} in region {} was refused: {code}: {}. Check that the IAM policy of the identity in use (`aws sts get-caller-identity` names it) allows {}:{op}, or use a profile that has it",
                self.service.name(),
                t.region,
                message,
                self.service.iam(),
            )),
            Class::BadCredentials => Some(format!(
                "{} {op} in region {}: AWS refused the credentials: {code}: {}. Check them with `aws sts get-caller-identity` and run `aws configure` (or `aws sso login --profile <profile>` for an SSO profile); an opt-in region must be enabled for the account (`aws account get-region-opt-status --region-name {}`)",
                self.service.name(),
                t.region,
                message,
                t.region
            )),
            Class::WrongRegion => {
                let url = endpoint(self.service, &t);
                let to = expected_region(message)
                    .map(|r| format!("set region = \"{r}\" in [aws] of the cluster file"))
                    .unwrap_or_else(|| {
                        "set region in [aws] of the cluster file to the endpoint's region (`aws ec2 describe-regions` lists them)".into()
                    });
                Some(format!(
                    "{} {op}: the endpoint {url} does not serve region {}, which the request was signed for: {code}: {}. The region comes from [aws] region in the cluster file, else AWS_REGION or the profile: {to}, or point {} (or AWS_ENDPOINT_URL) at region {}'s endpoint",
                    self.service.name(),
                    t.region,
                    message,
                    self.service.endpoint_var(),
                    t.region
                ))
            }
            Class::CredentialsGone => Some(format!(
                "{} {op} in region {}: the AWS credentials stopped resolving during the run ({}). Run `aws sso login --profile <profile>` (an SSO session that ended) or `aws configure`, then run the command again",
                self.service.name(),
                t.region,
                message
            )),
            Class::Unreachable => {
                let url = endpoint(self.service, &t);
                let custom =
                    url != format!("https://{}.{}.amazonaws.com", self.service.iam(), t.region);
                let check = if custom {
                    format!(
                        "Check the endpoint URL ({} or AWS_ENDPOINT_URL) and that it is up",
                        self.service.endpoint_var()
                    )
                } else if message.contains("dns error") {
                    format!(
                        "{url} does not resolve: check that region {} exists and is enabled for the account (`aws ec2 describe-regions`), and the DNS",
                        t.region
                    )
                } else {
                    "Check the network, any proxy (HTTPS_PROXY) and that the region is enabled for the account (`aws ec2 describe-regions`)".to_string()
                };
                Some(format!(
                    "{} {op} could not reach {url} (region {}): {}. {check}",
                    self.service.name(),
                    t.region,
                    message
                ))
            }
        }
    }

    pub fn into_provider(self, resource: &str) -> ProviderError {
        if let Some(line) = self.explain() {
            let what = match self.class {
                Class::Denied => PERMISSIONS_RESOURCE,
                Class::Unreachable | Class::WrongRegion => REGION_RESOURCE,
                _ => RESOURCE,
            };
            return ProviderError::Cloud {
                resource: what.to_string(),
                message: format!("{line} (for {resource})"),
                request_id: self.request_id,
            };
        }
        let message = match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        };
        ProviderError::Cloud {
            resource: resource.to_string(),
            message,
            request_id: self.request_id,
        }
    }
}

pub fn ec2<E, R>(e: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    CloudError::from_sdk(Service::Ec2, &e)
}

pub fn elb<E, R>(e: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    CloudError::from_sdk(Service::Elb, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_named_from_the_error_type() {
        assert_eq!(
            operation_of::<
                aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesError,
            >(),
            "DescribeInstanceTypes"
        );
    }

    #[test]
    fn a_refused_call_is_one_line_naming_the_call_region_and_request() {
        set_target(Target {
            region: "eu-central-1".into(),
            endpoint_url: None,
        });
        let e = CloudError {
            code: Some("UnauthorizedOperation".into()),
            message: "You are not authorized to perform this operation.".into(),
            request_id: Some("req-1".into()),
            operation: "RunInstances".into(),
            service: Service::Ec2,
            class: Class::Denied,
        };
        let s = e.into_provider("node acura-1").to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.starts_with("AWS permissions: EC2 RunInstances in region eu-central-1 was refused: UnauthorizedOperation"), "{s}");
        assert!(
            s.contains("ec2:RunInstances") && s.ends_with("(request ID req-1)"),
            "{s}"
        );
    }
}
