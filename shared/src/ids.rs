//! Identifiers: case ids (which double as the reference customers see in the
//! subject), RFC 5322 Message-IDs, and stable hashes for keys.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Crockford base32: no I, L, O, U, so a reference read aloud or retyped survives.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CASE_ID_RANDOM_LEN: usize = 10;

/// A case id such as `CB-7K3M9Q2XAB`: a short prefix, a dash and ten Crockford
/// base32 characters (50 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId(String);

impl CaseId {
    pub fn generate(prefix: &str) -> CaseId {
        let random = uuid::Uuid::new_v4();
        let bytes = random.as_bytes();
        let mut bits: u64 = 0;
        for b in &bytes[..8] {
            bits = (bits << 8) | u64::from(*b);
        }
        let mut out = String::with_capacity(prefix.len() + 1 + CASE_ID_RANDOM_LEN);
        out.push_str(prefix);
        out.push('-');
        for i in 0..CASE_ID_RANDOM_LEN {
            let index = ((bits >> (i * 5)) & 31) as usize;
            out.push(CROCKFORD[index] as char);
        }
        CaseId(out)
    }

    /// Accepts a case id in any letter case; returns None for anything else.
    pub fn parse(text: &str) -> Option<CaseId> {
        let upper = text.trim().to_ascii_uppercase();
        let (prefix, random) = upper.split_once('-')?;
        let prefix_ok = (2..=6).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
        let random_ok = random.len() == CASE_ID_RANDOM_LEN && random.bytes().all(|b| CROCKFORD.contains(&b));
        (prefix_ok && random_ok).then_some(CaseId(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag put in every outbound subject, e.g. `[CB-7K3M9Q2XAB]`.
    pub fn subject_tag(&self) -> String {
        format!("[{}]", self.0)
    }

    /// Finds the first valid `[CASE-ID]` tag in a subject line.
    pub fn find_in_subject(subject: &str) -> Option<CaseId> {
        let mut rest = subject;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let close = after.find(']')?;
            if let Some(id) = CaseId::parse(&after[..close]) {
                return Some(id);
            }
            rest = &after[close..];
        }
        None
    }

    /// Reads a case id from a plus-address such as `support+cb-7k3m9q2xab@example.com`.
    pub fn from_plus_address(address: &str) -> Option<CaseId> {
        let local = address.split('@').next()?;
        let (_, tag) = local.split_once('+')?;
        CaseId::parse(tag)
    }
}

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CaseId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CaseId::parse(&value).ok_or_else(|| format!("not a case id: {value:?}"))
    }
}

impl From<CaseId> for String {
    fn from(value: CaseId) -> Self {
        value.0
    }
}

/// Message-IDs are compared without angle brackets and surrounding space.
pub fn normalize_message_id(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_start_matches('<').trim_end_matches('>').trim();
    if trimmed.is_empty() || trimmed.len() > 998 || trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        None
    } else {
        Some(trimmed.to_string())
    }
}

/// Every id under which a Message-ID may be indexed or looked up. SES rewrites
/// the Message-ID of what it sends to `<ses-id@region.amazonses.com>`, so ids
/// in an SES domain are also known by their SES id alone.
pub fn message_id_lookup_keys(message_id: &str) -> Vec<String> {
    let mut keys = vec![message_id.to_string()];
    if let Some((local, domain)) = message_id.rsplit_once('@') {
        if domain.eq_ignore_ascii_case("amazonses.com") || domain.to_ascii_lowercase().ends_with(".amazonses.com") {
            keys.push(ses_message_key(local));
        }
    }
    keys
}

/// Index key for a mail SES sent with the given SES MessageId.
pub fn ses_message_key(ses_message_id: &str) -> String {
    format!("ses:{ses_message_id}")
}

/// Hex SHA-256 of some bytes; used to bound key sizes of hostile input.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_are_distinct() {
        let a = CaseId::generate("CB");
        let b = CaseId::generate("CB");
        assert_ne!(a, b);
        assert_eq!(CaseId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(CaseId::parse(&a.as_str().to_lowercase()), Some(a));
    }

    #[test]
    fn finds_reference_in_subjects_and_plus_addresses() {
        let id = CaseId::generate("CB");
        let subject = format!("Re: AW: [list] Refund {} please", id.subject_tag());
        assert_eq!(CaseId::find_in_subject(&subject), Some(id.clone()));
        assert_eq!(CaseId::find_in_subject("Re: [nope] [CB-123]"), None);
        assert_eq!(CaseId::find_in_subject("[unclosed"), None);
        let plus = format!("support+{}@example.com", id.as_str().to_lowercase());
        assert_eq!(CaseId::from_plus_address(&plus), Some(id));
        assert_eq!(CaseId::from_plus_address("support@example.com"), None);
    }

    #[test]
    fn message_ids_normalize_and_ses_ids_get_a_second_key() {
        assert_eq!(normalize_message_id(" <abc@x> ").as_deref(), Some("abc@x"));
        assert_eq!(normalize_message_id("<>"), None);
        assert_eq!(normalize_message_id("a b@x"), None);
        let keys = message_id_lookup_keys("0100018f-abc@email.amazonses.com");
        assert_eq!(keys[1], "ses:0100018f-abc");
        assert_eq!(message_id_lookup_keys("x@example.com").len(), 1);
    }
}
