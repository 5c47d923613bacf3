//! Resolving secrets (agent tokens and HMAC keys) from the environment or
//! AWS Secrets Manager. Values are cached for a few minutes so a warm
//! Lambda does not call Secrets Manager per request, yet rotation takes hold.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::SecretRef;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SecretError {
    #[error("{0} is not set")]
    NotSet(String),
    #[error("secret {0} is configured but Secrets Manager is not available here")]
    NoSecretsManager(String),
    #[error("could not read {what}: {reason}")]
    Read { what: String, reason: String },
}

pub type SecretFuture<'a> = Pin<Box<dyn Future<Output = Result<String, SecretError>> + Send + 'a>>;

pub trait SecretResolver: Send + Sync {
    fn resolve<'a>(&'a self, reference: &'a SecretRef) -> SecretFuture<'a>;
}

const CACHE_FOR: Duration = Duration::from_secs(300);

/// Environment variables, and Secrets Manager when a client is given.
pub struct Secrets {
    secrets_manager: Option<aws_sdk_secretsmanager::Client>,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl Secrets {
    pub fn env_only() -> Secrets {
        Secrets {
            secrets_manager: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_secrets_manager(client: aws_sdk_secretsmanager::Client) -> Secrets {
        Secrets {
            secrets_manager: Some(client),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, arn: &str) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        cache.get(arn).filter(|(_, at)| at.elapsed() < CACHE_FOR).map(|(v, _)| v.clone())
    }

    async fn read_secrets_manager(&self, arn: &str) -> Result<String, SecretError> {
        if let Some(value) = self.cached(arn) {
            return Ok(value);
        }
        let client = self
            .secrets_manager
            .as_ref()
            .ok_or_else(|| SecretError::NoSecretsManager(arn.to_string()))?;
        let output = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretError::Read {
                what: format!("secret {arn}"),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let value = output.secret_string.ok_or_else(|| SecretError::Read {
            what: format!("secret {arn}"),
            reason: "it has no string value".into(),
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(arn.to_string(), (value.clone(), Instant::now()));
        }
        Ok(value)
    }
}

impl SecretResolver for Secrets {
    fn resolve<'a>(&'a self, reference: &'a SecretRef) -> SecretFuture<'a> {
        Box::pin(async move {
            match (&reference.env, &reference.secret_arn) {
                (Some(var), _) => std::env::var(var).map_err(|_| SecretError::NotSet(format!("environment variable {var}"))),
                (None, Some(arn)) => self.read_secrets_manager(arn).await,
                (None, None) => Err(SecretError::NotSet("a secret reference with neither env nor secret_arn".into())),
            }
        })
    }
}

/// Secrets given in code, looked up by the reference's `env` name or ARN: for
/// the demo and tests, where nothing comes from the environment.
pub struct FixedSecrets(pub HashMap<String, String>);

impl SecretResolver for FixedSecrets {
    fn resolve<'a>(&'a self, reference: &'a SecretRef) -> SecretFuture<'a> {
        let key = reference.env.as_ref().or(reference.secret_arn.as_ref());
        let value = key.and_then(|k| self.0.get(k)).cloned();
        Box::pin(async move { value.ok_or_else(|| SecretError::NotSet(reference.describe())) })
    }
}
