//! Where inbound raw MIME is read from: S3 in AWS (the SES receipt rule's S3
//! action writes it), a folder locally.

use std::future::Future;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RawMailError {
    #[error("raw mail {0} not found")]
    NotFound(String),
    #[error("raw mail {location} is {size} bytes, over the limit of {limit}")]
    TooLarge { location: String, size: u64, limit: usize },
    #[error("could not read raw mail {location}: {reason}")]
    Read { location: String, reason: String },
    #[error("could not write {location}: {reason}")]
    Write { location: String, reason: String },
}

pub trait RawMailSource: Send + Sync {
    /// Reads the raw mail stored under `key`, refusing anything over `limit` bytes.
    fn fetch(&self, key: &str, limit: usize) -> impl Future<Output = Result<Vec<u8>, RawMailError>> + Send;
    /// A human- and operator-readable location for the key (e.g. `s3://bucket/key`).
    fn location(&self, key: &str) -> String;
    /// Stores content derived from a mail (an attachment) under `key`; returns its location.
    /// Writing the same key again replaces it, so a retried mail is harmless.
    fn put(&self, key: &str, content: Vec<u8>, content_type: &str) -> impl Future<Output = Result<String, RawMailError>> + Send;
}

pub struct S3RawMail {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3RawMail {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3RawMail {
        S3RawMail {
            client,
            bucket: bucket.into(),
        }
    }
}

impl RawMailSource for S3RawMail {
    async fn fetch(&self, key: &str, limit: usize) -> Result<Vec<u8>, RawMailError> {
        let location = self.location(key);
        let output = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            let not_found = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            if not_found {
                RawMailError::NotFound(location.clone())
            } else {
                RawMailError::Read {
                    location: location.clone(),
                    reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                }
            }
        })?;
        let size = output.content_length.unwrap_or(0).max(0) as u64;
        if size > limit as u64 {
            return Err(RawMailError::TooLarge { location, size, limit });
        }
        let bytes = output.body.collect().await.map_err(|e| RawMailError::Read {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    async fn put(&self, key: &str, content: Vec<u8>, content_type: &str) -> Result<String, RawMailError> {
        let location = self.location(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(content.into())
            .send()
            .await
            .map_err(|e| RawMailError::Write {
                location: location.clone(),
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(location)
    }
}

/// Raw mail as files in a folder (local runs).
pub struct FolderRawMail {
    dir: PathBuf,
}

impl FolderRawMail {
    pub fn new(dir: impl Into<PathBuf>) -> FolderRawMail {
        FolderRawMail { dir: dir.into() }
    }
}

impl RawMailSource for FolderRawMail {
    async fn fetch(&self, key: &str, limit: usize) -> Result<Vec<u8>, RawMailError> {
        let location = self.location(key);
        if key.contains("..") {
            return Err(RawMailError::NotFound(location));
        }
        let path = self.dir.join(key);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| RawMailError::NotFound(location.clone()))?;
        if meta.len() > limit as u64 {
            return Err(RawMailError::TooLarge {
                location,
                size: meta.len(),
                limit,
            });
        }
        tokio::fs::read(&path).await.map_err(|e| RawMailError::Read {
            location,
            reason: e.to_string(),
        })
    }

    fn location(&self, key: &str) -> String {
        self.dir.join(key).display().to_string()
    }

    async fn put(&self, key: &str, content: Vec<u8>, _content_type: &str) -> Result<String, RawMailError> {
        let location = self.location(key);
        let write_error = |e: std::io::Error| RawMailError::Write {
            location: location.clone(),
            reason: e.to_string(),
        };
        if key.contains("..") {
            return Err(write_error(std::io::Error::other("key leaves the folder")));
        }
        let path = self.dir.join(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(write_error)?;
        }
        tokio::fs::write(&path, content).await.map_err(write_error)?;
        Ok(location)
    }
}
