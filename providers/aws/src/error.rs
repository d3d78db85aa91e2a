//! What a failed AWS call said: its error code (matched on, never the message), its message and
//! its request ID, tied to the resource it concerned.

use acura_ha_api::provider::ProviderError;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::RequestId;

#[derive(Debug, Clone)]
pub struct CloudError {
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
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

    pub fn into_provider(self, resource: &str) -> ProviderError {
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
    aws_sdk_ec2::Error: From<SdkError<E, R>>,
{
    let err: aws_sdk_ec2::Error = e.into();
    CloudError {
        code: err.code().map(String::from),
        message: err
            .message()
            .map(String::from)
            .unwrap_or_else(|| aws_sdk_ec2::error::DisplayErrorContext(&err).to_string()),
        request_id: err.request_id().map(String::from),
    }
}

pub fn elb<E, R>(e: SdkError<E, R>) -> CloudError
where
    aws_sdk_elasticloadbalancingv2::Error: From<SdkError<E, R>>,
{
    use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata as _;
    use aws_sdk_elasticloadbalancingv2::operation::RequestId as _;
    let err: aws_sdk_elasticloadbalancingv2::Error = e.into();
    CloudError {
        code: err.code().map(String::from),
        message: err.message().map(String::from).unwrap_or_else(|| {
            aws_sdk_elasticloadbalancingv2::error::DisplayErrorContext(&err).to_string()
        }),
        request_id: err.request_id().map(String::from),
    }
}
