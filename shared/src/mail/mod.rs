//! The mail port: compose outbound MIME that threads, and send it through an
//! adapter (SES v2, or a local outbox folder).

pub mod outbox;
pub mod ses;

use std::future::Future;

use chrono::{DateTime, Utc};
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The provider asked us to slow down; retry later.
    #[error("mail provider throttled the send: {0}")]
    Throttled(String),
    /// A network fault or provider error that may pass.
    #[error("transient mail provider error: {0}")]
    Transient(String),
    /// Retrying will not help (rejected address, unverified identity, bad MIME...).
    #[error("mail provider refused the mail: {0}")]
    Permanent(String),
    #[error("mail could not be composed: {0}")]
    Compose(String),
}

impl MailError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, MailError::Throttled(_) | MailError::Transient(_))
    }
}

/// A composed mail ready for a provider.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub from: String,
    pub to: Vec<String>,
    pub message_id: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id (SES MessageId, or the outbox file name).
    pub provider_message_id: String,
}

pub trait MailSender: Send + Sync {
    fn send(&self, mail: &OutgoingMail) -> impl Future<Output = Result<SendReceipt, MailError>> + Send;
}

/// What a reply needs to thread in every client.
#[derive(Debug, Clone)]
pub struct Composition<'a> {
    pub from_address: &'a str,
    pub from_name: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub date: DateTime<Utc>,
}

/// Builds the MIME: text and HTML parts, threading headers, and the RFC 3834
/// marker (`Auto-Submitted: auto-replied`) so other robots do not answer it.
/// Never to an address without a local part or domain (what a lenient parser
/// once made of `"john smith"@x`): such a mail is refused here, by name.
pub fn compose(c: &Composition<'_>) -> Result<Vec<u8>, MailError> {
    if c.to.is_empty() {
        return Err(MailError::Compose("the mail has no recipient".into()));
    }
    if let Some(bad) = c.to.iter().find(|to| crate::address::normalize(to).is_none()) {
        return Err(MailError::Compose(format!("{bad:?} is not a mail address")));
    }
    let from = match c.from_name {
        Some(name) => mail_builder::headers::address::Address::new_address(Some(name), c.from_address),
        None => mail_builder::headers::address::Address::new_address(None::<&str>, c.from_address),
    };
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(c.to.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .subject(c.subject)
        .message_id(c.message_id)
        .date(c.date.timestamp())
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .text_body(c.body)
        .html_body(text_to_html(c.body));
    if let Some(reply_to) = c.reply_to {
        builder = builder.reply_to(reply_to);
    }
    if let Some(parent) = c.in_reply_to {
        builder = builder.in_reply_to(parent);
    }
    if !c.references.is_empty() {
        builder = builder.references(c.references.to_vec());
    }
    builder.write_to_vec().map_err(|e| MailError::Compose(e.to_string()))
}

/// `Re: <original subject> [CB-XXXXXXXXXX]`, without stacking `Re:` or tags.
pub fn reply_subject(original: &str, tag: &str) -> String {
    let mut base = original.trim();
    loop {
        let lower = base.to_ascii_lowercase();
        let stripped = ["re:", "aw:", "sv:", "fw:", "fwd:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| base[p.len()..].trim_start()));
        match stripped {
            Some(rest) => base = rest,
            None => break,
        }
    }
    let without_tag = base.replace(tag, "");
    let base = without_tag.trim();
    if base.is_empty() {
        format!("Re: {tag}")
    } else {
        format!("Re: {base} {tag}")
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Agent text is escaped; blank-line paragraphs and `- ` lists are kept.
pub fn text_to_html(text: &str) -> String {
    let mut html = String::from("<!DOCTYPE html><html><body>");
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        if lines
            .iter()
            .all(|l| l.trim_start().starts_with("- ") || l.trim_start().starts_with("* "))
        {
            html.push_str("<ul>");
            for line in lines {
                html.push_str("<li>");
                html.push_str(&escape_html(line.trim_start()[2..].trim()));
                html.push_str("</li>");
            }
            html.push_str("</ul>");
        } else {
            html.push_str("<p>");
            html.push_str(&lines.iter().map(|l| escape_html(l)).collect::<Vec<_>>().join("<br>"));
            html.push_str("</p>");
        }
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subject_keeps_one_re_and_one_tag() {
        assert_eq!(reply_subject("Refund", "[CB-1]"), "Re: Refund [CB-1]");
        assert_eq!(reply_subject("RE: Aw: Refund [CB-1]", "[CB-1]"), "Re: Refund [CB-1]");
        assert_eq!(reply_subject("", "[CB-1]"), "Re: [CB-1]");
    }

    #[test]
    fn html_escapes_and_keeps_structure() {
        let html = text_to_html("Hi <b>you</b>\n\n- one\n- two");
        assert!(html.contains("Hi &lt;b&gt;you&lt;/b&gt;"));
        assert!(html.contains("<ul><li>one</li><li>two</li></ul>"));
    }

    #[test]
    fn never_to_an_address_without_a_local_part() {
        let compose_to = |to: &[&str]| {
            let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
            compose(&Composition {
                from_address: "support@example.com",
                from_name: None,
                reply_to: None,
                to: &to,
                subject: "Re: x",
                body: "x",
                message_id: "out1@example.com",
                in_reply_to: None,
                references: &[],
                date: Utc::now(),
            })
        };
        for bad in [
            &["@customer.example"][..],
            &["ann"][..],
            &[][..],
            &["ann@customer.test", "<@customer.example>"][..],
        ] {
            assert!(matches!(compose_to(bad), Err(MailError::Compose(_))), "{bad:?}");
        }
        // A quoted local part goes out quoted, inside the angle brackets.
        let raw = compose_to(&["\"john smith\"@bigcorp.example"]).expect("composed");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("<\"john smith\"@bigcorp.example>"), "{text}");
    }

    #[test]
    fn composed_mail_threads_and_is_marked_auto_replied() {
        let to = vec!["ann@customer.test".to_string()];
        let refs = vec!["a@x".to_string(), "b@y".to_string()];
        let raw = compose(&Composition {
            from_address: "support@example.com",
            from_name: Some("Example Support"),
            reply_to: None,
            to: &to,
            subject: "Re: Refund [CB-0000000000]",
            body: "What is the amount?",
            message_id: "out1@example.com",
            in_reply_to: Some("b@y"),
            references: &refs,
            date: Utc::now(),
        })
        .unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.message_id(), Some("out1@example.com"));
        assert_eq!(parsed.in_reply_to().as_text(), Some("b@y"));
        assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
        assert_eq!(parsed.body_text(0).as_deref().map(str::trim), Some("What is the amount?"));
    }
}
