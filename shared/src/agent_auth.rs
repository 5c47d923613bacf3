//! Request authentication between casebridge and agents.
//!
//! Two HMAC-SHA256 schemes; `docs/agents.md` has the exact strings, test
//! vectors and verifiers in Python and TypeScript, `docs/security.md` the
//! threat model.
//!
//! **v2** (the default) signs what the request *does*, not only its body:
//!
//! ```text
//! X-Casebridge-Key-Id: 2026-12
//! X-Casebridge-Timestamp: 1795497600
//! X-Casebridge-Signature: v2=<hex HMAC-SHA256(secret, string to sign)>
//!
//! string to sign = "casebridge-v2" LF direction LF agent LF METHOD LF
//!                  path-with-query LF timestamp LF hex(SHA-256(body))
//! ```
//!
//! The direction (`to-agent` for casebridge's calls, `to-casebridge` for the
//! agent's context reads and callbacks) means a request casebridge signed can
//! never pass as one from the agent; the method and path mean a signed
//! callback for one turn, or a signed context read of one case, is worth
//! nothing anywhere else. The key id lets a secret rotate with two valid at
//! once.
//!
//! **v1** (the scheme before v2, kept for agents that have not migrated)
//! signs `timestamp "." body` only; see the migration in `docs/agents.md`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::{AgentAuth, AgentConfig, HmacScheme, SecretRef};
use crate::secrets::{SecretError, SecretResolver};

pub const TIMESTAMP_HEADER: &str = "x-casebridge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-casebridge-signature";
pub const KEY_ID_HEADER: &str = "x-casebridge-key-id";
pub const AGENT_HEADER: &str = "x-casebridge-agent";
/// Five minutes either way.
pub const REPLAY_WINDOW_SECS: u64 = 300;
/// Shortest secrets accepted: a bearer token travels as it is, so it must
/// not be guessable; an HMAC key should be as long as the hash's block of
/// entropy it protects (RFC 2104 §3 recommends at least the output length).
pub const MIN_BEARER_BYTES: usize = 16;
pub const MIN_HMAC_BYTES: usize = 32;

/// Which way a signed request goes. Part of the v2 string to sign, so a
/// request casebridge signed cannot be replayed as one from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// casebridge calling the agent.
    ToAgent,
    /// The agent reading context or posting an answer to casebridge.
    ToCasebridge,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::ToAgent => "to-agent",
            Direction::ToCasebridge => "to-casebridge",
        }
    }
}

/// What a v2 signature binds.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub direction: Direction,
    /// The agent's name as configured (and sent in `X-Casebridge-Agent`).
    pub agent: &'a str,
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// The request target as sent: the absolute path, and `?` and the query
    /// when there is one, exactly as on the wire (not decoded).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the request carries no timestamp or signature")]
    Missing,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is outside the {REPLAY_WINDOW_SECS}-second window")]
    Expired,
    #[error("the signature is not of the scheme this agent uses ({0})")]
    WrongScheme(&'static str),
    #[error("no key with that key id is configured for this agent")]
    UnknownKey,
    #[error("the signature does not match")]
    Mismatch,
}

fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

/// The v2 string to sign, for documentation, test vectors and debugging.
pub fn string_to_sign_v2(facts: &RequestFacts<'_>, timestamp: i64) -> String {
    format!(
        "casebridge-v2\n{}\n{}\n{}\n{}\n{}\n{}",
        facts.direction.label(),
        facts.agent,
        facts.method,
        facts.path_and_query,
        timestamp,
        hex(&Sha256::digest(facts.body))
    )
}

/// The `X-Casebridge-Signature` value of a v2-signed request.
pub fn sign_v2(secret: &[u8], facts: &RequestFacts<'_>, timestamp: i64) -> String {
    let mut mac = new_mac(secret);
    mac.update(string_to_sign_v2(facts, timestamp).as_bytes());
    format!("v2={}", hex(&mac.finalize().into_bytes()))
}

/// The `X-Casebridge-Signature` value of a v1-signed request (body only).
pub fn sign_v1(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

/// One HMAC key of an agent.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey {
    pub id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for HmacKey {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The headers of a signed request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PresentedSignature<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub key_id: Option<&'a str>,
}

fn check_window(timestamp: Option<&str>, now: i64) -> Result<i64, SignatureError> {
    let timestamp: i64 = timestamp
        .ok_or(SignatureError::Missing)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Checked: the header is the caller's, and i64::MIN would overflow.
    let skew = now.checked_sub(timestamp).ok_or(SignatureError::Expired)?.unsigned_abs();
    if skew > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Expired);
    }
    Ok(timestamp)
}

/// Checks a signed request against an agent's keys. Under `V2` only v2
/// signatures pass. Under `V1` (an agent migrating) v1 and v2 both pass, so an
/// agent can start signing v2 before casebridge is switched over.
pub fn verify(
    scheme: HmacScheme,
    keys: &[HmacKey],
    presented: PresentedSignature<'_>,
    facts: &RequestFacts<'_>,
    now: i64,
) -> Result<(), SignatureError> {
    let signature = presented.signature.ok_or(SignatureError::Missing)?.trim();
    let timestamp = check_window(presented.timestamp, now)?;
    let (version, tag) = signature.split_once('=').ok_or(SignatureError::Mismatch)?;
    let tag = unhex(tag).filter(|t| t.len() == 32).ok_or(SignatureError::Mismatch)?;
    match (version, scheme) {
        ("v2", _) => {
            let key = match presented.key_id {
                Some(id) => keys.iter().find(|k| k.id == id.trim()).ok_or(SignatureError::UnknownKey)?,
                // Without a key id, the current key (the first).
                None => keys.first().ok_or(SignatureError::UnknownKey)?,
            };
            let mut mac = new_mac(&key.secret);
            mac.update(string_to_sign_v2(facts, timestamp).as_bytes());
            mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
        }
        ("v1", HmacScheme::V1) => {
            // v1 has no key id: any configured key may have signed it.
            let ok = keys.iter().any(|key| {
                let mut mac = new_mac(&key.secret);
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(facts.body);
                mac.verify_slice(&tag).is_ok()
            });
            ok.then_some(()).ok_or(SignatureError::Mismatch)
        }
        ("v1", HmacScheme::V2) => Err(SignatureError::WrongScheme("v2")),
        _ => Err(SignatureError::Mismatch),
    }
}

/// Compares two secrets in time independent of where they differ. An empty
/// expected secret matches nothing: an unset credential never opens a door.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    !expected.is_empty() && presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An agent's credentials, read from where the configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCredentials {
    None,
    Bearer(BearerToken),
    Hmac { scheme: HmacScheme, keys: Vec<HmacKey> },
}

/// A bearer token that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CredentialError {
    #[error("agent {agent:?}: {source}")]
    Unavailable { agent: String, source: SecretError },
    #[error("agent {agent:?}: the {kind} in {location} is {length} bytes; at least {minimum} are required")]
    TooShort {
        agent: String,
        kind: &'static str,
        location: String,
        length: usize,
        minimum: usize,
    },
}

async fn read_secret(
    resolver: &dyn SecretResolver,
    agent: &str,
    reference: &SecretRef,
    kind: &'static str,
    minimum: usize,
) -> Result<String, CredentialError> {
    let value = resolver.resolve(reference).await.map_err(|source| CredentialError::Unavailable {
        agent: agent.to_string(),
        source,
    })?;
    if value.len() < minimum {
        return Err(CredentialError::TooShort {
            agent: agent.to_string(),
            kind,
            location: reference.describe(),
            length: value.len(),
            minimum,
        });
    }
    Ok(value)
}

/// Reads an agent's secrets and refuses empty or short ones, so a variable
/// set to "" can never turn authentication off.
pub async fn credentials(resolver: &dyn SecretResolver, agent: &AgentConfig) -> Result<AgentCredentials, CredentialError> {
    match &agent.auth {
        AgentAuth::None => Ok(AgentCredentials::None),
        AgentAuth::Bearer { token } => {
            let token = read_secret(resolver, &agent.name, token, "bearer token", MIN_BEARER_BYTES).await?;
            Ok(AgentCredentials::Bearer(BearerToken(token)))
        }
        AgentAuth::Hmac {
            secret,
            scheme,
            key_id,
            previous,
        } => {
            let mut keys = vec![HmacKey {
                id: key_id.clone(),
                secret: read_secret(resolver, &agent.name, secret, "HMAC secret", MIN_HMAC_BYTES)
                    .await?
                    .into_bytes(),
            }];
            if let Some(previous) = previous {
                keys.push(HmacKey {
                    id: previous.key_id.clone(),
                    secret: read_secret(resolver, &agent.name, &previous.secret, "HMAC secret", MIN_HMAC_BYTES)
                        .await?
                        .into_bytes(),
                });
            }
            Ok(AgentCredentials::Hmac { scheme: *scheme, keys })
        }
    }
}

/// At start-up: every agent whose secrets live in environment variables has
/// them set and long enough (read through `resolver`, which in a function is
/// the environment itself). Secrets in Secrets Manager are checked on first
/// use, by [`credentials`]: reading them at init would put a network call on
/// every cold start.
pub async fn check_env_secrets(config: &crate::config::Config, resolver: &dyn SecretResolver) -> Result<(), CredentialError> {
    for agent in &config.agents {
        if agent.auth.secrets().all(|s| s.env.is_some()) {
            credentials(resolver, agent).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn facts<'a>(direction: Direction, method: &'a str, path: &'a str, body: &'a [u8]) -> RequestFacts<'a> {
        RequestFacts {
            direction,
            agent: "refund-agent",
            method,
            path_and_query: path,
            body,
        }
    }

    fn keys() -> Vec<HmacKey> {
        vec![HmacKey {
            id: "k2".into(),
            secret: SECRET.to_vec(),
        }]
    }

    fn presented<'a>(timestamp: &'a str, signature: &'a str) -> PresentedSignature<'a> {
        PresentedSignature {
            timestamp: Some(timestamp),
            signature: Some(signature),
            key_id: Some("k2"),
        }
    }

    /// The documented test vectors (docs/agents.md, computed there with
    /// Python's hmac): if these change, every agent's verifier breaks.
    #[test]
    fn the_documented_v2_vectors() {
        let body = br#"{"caseId":"CB-0000000000","conversationId":"c-1"}"#;
        let call = facts(Direction::ToAgent, "POST", "/invoke?tenant=7", body);
        assert_eq!(
            string_to_sign_v2(&call, 1_795_497_600),
            "casebridge-v2\nto-agent\nrefund-agent\nPOST\n/invoke?tenant=7\n1795497600\n\
             403f9884a8198f3684e349debe101c026524b9af9fb9ecda48065fc4e44b418b"
        );
        assert_eq!(
            sign_v2(SECRET, &call, 1_795_497_600),
            "v2=ba4df9d2b980748a460bbec1b618f5a14979e52411c72d9aea1ee1c7df2bcb31"
        );
        let read = facts(Direction::ToCasebridge, "GET", "/cases/CB-0000000000/context", b"");
        assert_eq!(
            sign_v2(SECRET, &read, 1_795_497_600),
            "v2=85f71b7fc8e9cf52fe188ab712ec5e1dd37e6e69c7a846a8a08ada18389e043c"
        );
        let signature = sign_v2(SECRET, &call, 1_795_497_600);
        assert_eq!(
            verify(HmacScheme::V2, &keys(), presented("1795497600", &signature), &call, 1_795_497_700),
            Ok(())
        );
    }

    #[test]
    fn v2_binds_direction_method_path_agent_and_body() {
        let body = br#"{"responseType":"NoAction"}"#;
        let signed = facts(Direction::ToCasebridge, "POST", "/turns/CB-0000000001.0000000001/answer", body);
        let sig = sign_v2(SECRET, &signed, 1_000_000);
        let ok = |f: &RequestFacts<'_>| verify(HmacScheme::V2, &keys(), presented("1000000", &sig), f, 1_000_000);
        assert_eq!(ok(&signed), Ok(()));
        // Another turn, another case's context, the other direction, another method, another body, another agent.
        let other_turn = facts(Direction::ToCasebridge, "POST", "/turns/CB-0000000002.0000000001/answer", body);
        let reversed = facts(Direction::ToAgent, "POST", "/turns/CB-0000000001.0000000001/answer", body);
        let as_get = facts(Direction::ToCasebridge, "GET", "/turns/CB-0000000001.0000000001/answer", body);
        let other_body = facts(Direction::ToCasebridge, "POST", "/turns/CB-0000000001.0000000001/answer", b"{}");
        let mut other_agent = signed;
        other_agent.agent = "billing-agent";
        for f in [other_turn, reversed, as_get, other_body, other_agent] {
            assert_eq!(ok(&f), Err(SignatureError::Mismatch), "{f:?}");
        }
    }

    #[test]
    fn window_key_ids_and_schemes() {
        let f = facts(Direction::ToCasebridge, "GET", "/cases/CB-0000000001/context", b"");
        let sig = sign_v2(SECRET, &f, 1_000_000);
        let check = |p: PresentedSignature<'_>, now: i64| verify(HmacScheme::V2, &keys(), p, &f, now);
        assert_eq!(check(presented("1000000", &sig), 1_000_300), Ok(()));
        assert_eq!(check(presented("1000000", &sig), 1_000_301), Err(SignatureError::Expired));
        assert_eq!(check(presented("1000000", &sig), 999_699), Err(SignatureError::Expired));
        // An attacker's timestamp must not overflow the arithmetic.
        assert_eq!(
            check(presented("-9223372036854775808", &sig), 1_000_000),
            Err(SignatureError::Expired)
        );
        assert_eq!(check(presented("9223372036854775807", &sig), -10), Err(SignatureError::Expired));
        assert_eq!(check(presented("x", &sig), 1_000_000), Err(SignatureError::BadTimestamp));
        assert_eq!(check(presented("1000000", "v2=zz"), 1_000_000), Err(SignatureError::Mismatch));
        assert_eq!(check(PresentedSignature::default(), 1_000_000), Err(SignatureError::Missing));
        let mut unknown = presented("1000000", &sig);
        unknown.key_id = Some("k1");
        assert_eq!(check(unknown, 1_000_000), Err(SignatureError::UnknownKey));
        // Rotation: the previous key still verifies under its own id.
        let rotated = vec![
            HmacKey {
                id: "k3".into(),
                secret: b"another secret, 32 bytes or more".to_vec(),
            },
            keys().remove(0),
        ];
        assert_eq!(verify(HmacScheme::V2, &rotated, presented("1000000", &sig), &f, 1_000_000), Ok(()));
        // v1 signatures pass only for an agent still on v1.
        let v1 = sign_v1(SECRET, 1_000_000, b"");
        assert_eq!(check(presented("1000000", &v1), 1_000_000), Err(SignatureError::WrongScheme("v2")));
        assert_eq!(verify(HmacScheme::V1, &keys(), presented("1000000", &v1), &f, 1_000_000), Ok(()));
        assert_eq!(verify(HmacScheme::V1, &keys(), presented("1000000", &sig), &f, 1_000_000), Ok(()));
    }

    #[test]
    fn an_empty_secret_matches_nothing() {
        assert!(!same_secret(b"", b""));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
    }
}
