//! `[state] backend = "s3"`: [`StateBackend`] over `acura_ha_aws::s3_state`.
//!
//! Each call runs on the backends' own runtime ([`super::rt::block`]).

use std::sync::Mutex;

use acura_ha_aws::s3_state::{Condition, S3Settings, S3State, S3StateError};

use super::backend::{BackendError, Object, Precondition, StateBackend, Version};
use super::rt::block;

/// The bucket, connected (and checked) on first use.
#[derive(Debug)]
pub struct S3Backend {
    settings: S3Settings,
    conn: Mutex<Option<S3State>>,
}

impl S3Backend {
    pub fn new(settings: S3Settings) -> Self {
        S3Backend {
            settings,
            conn: Mutex::new(None),
        }
    }

    fn conn(&self) -> Result<S3State, BackendError> {
        let mut slot = self.conn.lock().expect("not poisoned");
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = block(S3State::connect(self.settings.clone())).map_err(convert)?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

fn convert(e: S3StateError) -> BackendError {
    match e {
        S3StateError::PreconditionFailed { bucket, key } => BackendError::Changed {
            location: format!("s3://{bucket}/{key}"),
        },
        S3StateError::Public { .. } => BackendError::Public(e.to_string()),
        S3StateError::Call { .. } => BackendError::Remote(e.to_string()),
    }
}

impl StateBackend for S3Backend {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self, name: &str) -> String {
        format!(
            "s3://{}/{}{name}",
            self.settings.bucket, self.settings.prefix
        )
    }

    fn get(&self, name: &str) -> Result<Option<Object>, BackendError> {
        let c = self.conn()?;
        let name = name.to_string();
        let got = block(async move { c.get(&name).await }).map_err(convert)?;
        Ok(got.map(|(bytes, etag)| Object {
            bytes,
            version: Version(etag),
        }))
    }

    fn put(&self, name: &str, bytes: &[u8], when: Precondition) -> Result<Version, BackendError> {
        let c = self.conn()?;
        let name = name.to_string();
        let bytes = bytes.to_vec();
        let cond = match when {
            Precondition::None => Condition::None,
            Precondition::CreateOnly => Condition::CreateOnly,
            Precondition::IfMatch(v) => Condition::IfMatch(v.0),
        };
        block(async move { c.put(&name, bytes, &cond).await })
            .map(Version)
            .map_err(convert)
    }

    fn delete(&self, name: &str, version: Option<&Version>) -> Result<(), BackendError> {
        let c = self.conn()?;
        let name = name.to_string();
        let etag = version.map(|v| v.0.clone());
        block(async move { c.delete(&name, etag.as_deref()).await }).map_err(convert)
    }

    fn keeps_versions(&self) -> Result<bool, BackendError> {
        Ok(self.conn()?.versioned)
    }
}
