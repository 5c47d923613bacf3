//! Request authentication between casebridge and agents.
//!
//! HMAC: casebridge sends
//!
//! ```text
//! X-Casebridge-Timestamp: 1795497600
//! X-Casebridge-Signature: v1=<hex of HMAC-SHA256(secret, "1795497600." + exact body bytes)>
//! ```
//!
//! An agent recomputes the HMAC over the timestamp, a dot and the raw body it
//! received, compares in constant time, and refuses timestamps more than
//! [`REPLAY_WINDOW_SECS`] away from its clock. Agents sign their async
//! callbacks the same way, naming themselves in `X-Casebridge-Agent`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

pub const TIMESTAMP_HEADER: &str = "x-casebridge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-casebridge-signature";
pub const AGENT_HEADER: &str = "x-casebridge-agent";
/// Five minutes either way.
pub const REPLAY_WINDOW_SECS: i64 = 300;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the request carries no timestamp or signature")]
    Missing,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is outside the {REPLAY_WINDOW_SECS}-second window")]
    Expired,
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Casebridge-Signature` value for a body sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut hex = String::with_capacity(3 + tag.len() * 2);
    hex.push_str("v1=");
    for byte in tag {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Checks a signed request. `now` is unix seconds.
pub fn verify(secret: &[u8], timestamp: Option<&str>, signature: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - timestamp).abs() > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Expired);
    }
    let hex = signature.trim().strip_prefix("v1=").ok_or(SignatureError::Mismatch)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignatureError::Mismatch);
    }
    let bytes: Vec<u8> = (0..32)
        .filter_map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok())
        .collect();
    mac(secret, timestamp, body)
        .verify_slice(&bytes)
        .map_err(|_| SignatureError::Mismatch)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_within_the_window_only() {
        let body = br#"{"caseId":"CB-0000000000"}"#;
        let signature = sign(b"s3cret", 1_000_000, body);
        assert!(signature.starts_with("v1=") && signature.len() == 67);
        assert_eq!(verify(b"s3cret", Some("1000000"), Some(&signature), body, 1_000_100), Ok(()));
        assert_eq!(
            verify(b"s3cret", Some("1000000"), Some(&signature), body, 1_000_301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(b"other", Some("1000000"), Some(&signature), body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", Some("1000000"), Some(&signature), b"{}", 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", Some("1000001"), Some(&signature), body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", None, Some(&signature), body, 1_000_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"s3cret", Some("x"), Some(&signature), body, 1_000_000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(b"s3cret", Some("1000000"), Some("v1=zz"), body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
    }
}
