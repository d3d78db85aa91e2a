//! The cluster state in an S3 bucket (`[state] backend = "s3"`): objects read with their ETag
//! and written with a precondition — `If-None-Match: *` (create only: the lock, the first
//! state) or `If-Match: <etag>` (the version this run read) — so two writers never both win
//! and an update never silently replaces one it did not see. Server-side encryption is asked
//! for on every write (SSE-S3, or SSE-KMS with the given key ID), and a bucket whose policy or
//! ACL makes it public is refused before anything is read or written.
//!
//! The client is configured as the aws CLI would be (profiles, SSO, `AWS_REGION`,
//! `AWS_ENDPOINT_URL[_S3]`), with the provider's timeouts and retries. With an endpoint URL set
//! (MinIO, Ceph RGW, moto) requests use path-style addressing, which those stores expect.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

/// Where the state lives and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// Prepended to every key (`team/prod/`); may be empty.
    pub prefix: String,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// SSE-KMS with this key; SSE-S3 (AES256) without.
    pub kms_key_id: Option<String>,
}

/// A write's precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Whatever is there.
    None,
    /// Only if no object has the key (`If-None-Match: *`).
    CreateOnly,
    /// Only if the object's ETag is still this one (`If-Match`).
    IfMatch(String),
}

/// What an S3 call of the state backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum S3StateError {
    #[error("s3://{bucket}/{key} was changed by someone else (precondition failed)")]
    PreconditionFailed { bucket: String, key: String },

    #[error("the bucket {bucket} is public ({why}): the state would be readable by anyone")]
    Public { bucket: String, why: String },

    /// A call that failed, or (`operation` empty) no call could be signed: `message` is then
    /// the whole one-line cause.
    #[error("{}", call_line(operation, bucket, key, code, message))]
    Call {
        operation: &'static str,
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
}

fn call_line(operation: &str, bucket: &str, key: &str, code: &str, message: &str) -> String {
    if operation.is_empty() {
        format!("state s3://{bucket}/{key}: {message}")
    } else {
        format!("{operation} s3://{bucket}/{key} failed: {code}: {message}")
    }
}

/// The bucket, checked and ready.
#[derive(Debug, Clone)]
pub struct S3State {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
    /// Bucket versioning is on: S3 keeps every previous version itself.
    pub versioned: bool,
}

/// The ACL grantees that make a bucket readable beyond its account.
const PUBLIC_GRANTEES: [&str; 2] = [
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
];

impl S3State {
    /// Builds the client and checks the bucket: it exists and answers, it is not public (when
    /// its policy status and ACL can be read: a caller allowed only object calls is not
    /// refused for that), and whether versioning is on.
    pub async fn connect(settings: S3Settings) -> Result<S3State, S3StateError> {
        // Credentials and region first: a run that cannot sign is told so in one line (where the
        // tool looked and the fix) before the bucket is asked anything.
        let conf = crate::credentials::load(&crate::credentials::Wanted {
            region: settings.region.clone(),
            profile: settings.profile.clone(),
            profile_setting: "[state] profile in the cluster file",
        })
        .await
        .map_err(|e| S3StateError::Call {
            operation: "",
            bucket: settings.bucket.clone(),
            key: String::new(),
            code: e.code().to_string(),
            message: e.to_string(),
        })?;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL_S3")
            .or_else(|| std::env::var_os("AWS_ENDPOINT_URL"))
            .is_some();
        let s3conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(custom_endpoint)
            .build();
        let client = aws_sdk_s3::Client::from_conf(s3conf);
        let mut s = S3State {
            client,
            settings,
            versioned: false,
        };
        s.check_bucket().await?;
        Ok(s)
    }

    pub fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    /// The full key of `name` (the prefix prepended).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    /// A failed call: a refused permission or credentials, or an endpoint that cannot be
    /// reached, in one line with what to check ([`crate::error::CloudError::explain`]); any
    /// other answer with its code and message. Never the SDK's `Debug` structure.
    fn call_error<E>(
        &self,
        operation: &'static str,
        key: &str,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> S3StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let c = crate::error::CloudError::from_sdk(crate::error::Service::S3, e);
        let request = c
            .request_id
            .as_ref()
            .map(|r| format!(" (request ID {r})"))
            .unwrap_or_default();
        match c.explain() {
            Some(line) => S3StateError::Call {
                operation: "",
                bucket: self.settings.bucket.clone(),
                key: key.to_string(),
                code: c.code.clone().unwrap_or_else(|| "error".into()),
                message: format!("{line}{request}"),
            },
            None => S3StateError::Call {
                operation,
                bucket: self.settings.bucket.clone(),
                key: key.to_string(),
                code: c.code.clone().unwrap_or_else(|| "error".into()),
                message: format!("{}{request}", c.message),
            },
        }
    }

    async fn check_bucket(&mut self) -> Result<(), S3StateError> {
        let bucket = self.settings.bucket.clone();
        let c = &self.client;
        // Versioning unknown (not allowed to ask, or an answer the SDK cannot read, as moto's
        // for a bucket never versioned): keep `.bak` copies, the safe side. A missing bucket
        // or a refused identity is an error here, before anything else is tried.
        match c.get_bucket_versioning().bucket(&bucket).send().await {
            Ok(v) => {
                self.versioned =
                    v.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled);
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        "NoSuchBucket"
                            | "InvalidAccessKeyId"
                            | "SignatureDoesNotMatch"
                            | "ExpiredToken"
                            | "InvalidToken"
                    )
                ) || matches!(
                    e,
                    aws_sdk_s3::error::SdkError::DispatchFailure(_)
                        | aws_sdk_s3::error::SdkError::TimeoutError(_)
                ) =>
            {
                return Err(self.call_error("GetBucketVersioning", "", &e));
            }
            Err(_) => self.versioned = false,
        }
        // A bucket without a policy answers NoSuchBucketPolicy: not public by policy.
        if let Ok(p) = c.get_bucket_policy_status().bucket(&bucket).send().await
            && p.policy_status().and_then(|s| s.is_public()) == Some(true)
        {
            return Err(S3StateError::Public {
                bucket,
                why: "its bucket policy grants public access".into(),
            });
        }
        if let Ok(acl) = c.get_bucket_acl().bucket(&bucket).send().await {
            for g in acl.grants() {
                let uri = g.grantee().and_then(|g| g.uri()).unwrap_or("");
                if PUBLIC_GRANTEES.contains(&uri) {
                    let perm = g.permission().map(|p| p.as_str()).unwrap_or("?");
                    return Err(S3StateError::Public {
                        bucket,
                        why: format!("its ACL grants {perm} to {uri}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The object and its ETag, or `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, S3StateError> {
        let key = self.key(name);
        let out = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Ok(None);
                }
                return Err(self.call_error("GetObject", &key, &e));
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| S3StateError::Call {
                operation: "GetObject",
                bucket: self.settings.bucket.clone(),
                key: key.clone(),
                code: "ReadBody".into(),
                message: e.to_string(),
            })?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, etag)))
    }

    /// Writes the object under `condition`, encrypted at rest; returns its new ETag.
    pub async fn put(
        &self,
        name: &str,
        bytes: Vec<u8>,
        condition: &Condition,
    ) -> Result<String, S3StateError> {
        let key = self.key(name);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        req = match &self.settings.kms_key_id {
            Some(id) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(id),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        req = match condition {
            Condition::None => req,
            Condition::CreateOnly => req.if_none_match("*"),
            Condition::IfMatch(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
            Err(e) => Err(self.precondition_or(&key, "PutObject", &e)),
        }
    }

    /// Deletes the object, only if its ETag is still `if_match` when given. An object that is
    /// already gone is not an error.
    pub async fn delete(&self, name: &str, if_match: Option<&str>) -> Result<(), S3StateError> {
        let key = self.key(name);
        let mut req = self
            .client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(&key);
        if let Some(etag) = if_match {
            req = req.if_match(etag);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(self.precondition_or(&key, "DeleteObject", &e)),
        }
    }

    /// 412 PreconditionFailed, and 409 ConditionalRequestConflict (a concurrent conditional
    /// write to the same key won), both mean "someone else wrote it".
    fn precondition_or<E>(
        &self,
        key: &str,
        operation: &'static str,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> S3StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code();
        if status == Some(412)
            || code == Some("PreconditionFailed")
            || code == Some("ConditionalRequestConflict")
        {
            return S3StateError::PreconditionFailed {
                bucket: self.settings.bucket.clone(),
                key: key.to_string(),
            };
        }
        self.call_error(operation, key, e)
    }
}
