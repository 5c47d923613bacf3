//! Mail addresses, parsed strictly from the raw header (RFC 5322 §3.4).
//!
//! mail-parser is lenient where casebridge must not be: it reads
//! `"john smith"@bigcorp.example` as the display name "john smith" and the
//! address `@bigcorp.example`, and keeps an obsolete source route
//! (`<@evil.example:m7@customer.example>`) inside the address. An address
//! decides who is a participant of a case and where replies go, so it is
//! taken from the raw header with this parser instead:
//!
//! - a quoted local part is kept (unquoted when it needs no quotes, so
//!   `"ann"@x` and `ann@x` are one mailbox);
//! - an obsolete route is dropped, the address after it kept;
//! - comments, folding white space and groups are understood;
//! - anything without a local part or a domain is not an address;
//! - the normal form is ASCII-lowercased (domains are case-insensitive, and
//!   no mail system casebridge talks to treats local parts otherwise).

/// One mailbox of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The address in its normal form.
    pub address: String,
    /// Whether a display name came before `<…>`.
    pub has_display_name: bool,
}

/// RFC 5321 §4.5.3.1: 64 octets of local part, 254 of address.
const MAX_LOCAL: usize = 64;
const MAX_ADDRESS: usize = 254;
/// A header with more mailboxes than this is hostile; the rest are dropped.
const MAX_MAILBOXES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Atom(String),
    Quoted(String),
    Literal(String),
    Special(char),
}

fn is_special(c: char) -> bool {
    matches!(c, '(' | ')' | '<' | '>' | '[' | ']' | ':' | ';' | '@' | '\\' | ',' | '.' | '"')
}

/// Splits a header value into tokens, dropping white space and comments.
/// Never fails: malformed input gives tokens the grammar then refuses.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() || c.is_control() => {}
            '(' => {
                // Comments nest; a backslash quotes the next character.
                let mut depth = 1usize;
                while depth > 0 {
                    match chars.next() {
                        Some('\\') => {
                            chars.next();
                        }
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            '"' => {
                let mut content = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => {
                            if let Some(escaped) = chars.next() {
                                content.push(escaped);
                            }
                        }
                        Some('"') | None => break,
                        // Folding inside a quoted string is not content.
                        Some('\r' | '\n') => {}
                        Some(other) => content.push(other),
                    }
                }
                out.push(Token::Quoted(content));
            }
            '[' => {
                let mut content = String::new();
                for next in chars.by_ref() {
                    if next == ']' {
                        break;
                    }
                    if !next.is_whitespace() {
                        content.push(next);
                    }
                }
                out.push(Token::Literal(content));
            }
            c if is_special(c) => out.push(Token::Special(c)),
            c => {
                let mut atom = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || next.is_control() || is_special(next) {
                        break;
                    }
                    atom.push(next);
                    chars.next();
                }
                out.push(Token::Atom(atom));
            }
        }
    }
    out
}

/// RFC 5322 atext, plus UTF-8 beyond ASCII (RFC 6532).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(text: &str) -> bool {
    !text.is_empty() && text.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// The local part in normal form: unquoted when it is a dot-atom, else quoted
/// with `"` and `\` escaped.
fn local_part(words: &[&Token]) -> Option<String> {
    let mut parts = Vec::with_capacity(words.len());
    let mut quoted = false;
    for word in words {
        match word {
            Token::Atom(a) if a.chars().all(is_atext) => parts.push(a.clone()),
            Token::Quoted(q) => {
                quoted = true;
                parts.push(q.clone());
            }
            _ => return None,
        }
    }
    let joined = parts.join(".");
    if joined.is_empty() || joined.chars().any(|c| c.is_control()) {
        return None;
    }
    if is_dot_atom(&joined) {
        return Some(joined);
    }
    if !quoted {
        return None;
    }
    let mut text = String::with_capacity(joined.len() + 2);
    text.push('"');
    for c in joined.chars() {
        if c == '"' || c == '\\' {
            text.push('\\');
        }
        text.push(c);
    }
    text.push('"');
    Some(text)
}

fn domain(tokens: &[Token]) -> Option<String> {
    match tokens {
        [Token::Literal(literal)] if !literal.is_empty() && literal.chars().all(|c| c.is_ascii_graphic() && c != '[' && c != ']') => {
            Some(format!("[{literal}]"))
        }
        _ => {
            let mut labels = Vec::new();
            let mut expect_label = true;
            for token in tokens {
                match (token, expect_label) {
                    (Token::Atom(label), true) => {
                        let ok = label.chars().all(|c| c.is_alphanumeric() || c == '-') && !label.starts_with('-') && !label.ends_with('-');
                        if !ok {
                            return None;
                        }
                        labels.push(label.as_str());
                        expect_label = false;
                    }
                    (Token::Special('.'), false) => expect_label = true,
                    _ => return None,
                }
            }
            (!labels.is_empty() && !expect_label).then(|| labels.join("."))
        }
    }
}

/// An addr-spec from its tokens: `local-part "@" domain`.
fn addr_spec(tokens: &[Token]) -> Option<String> {
    let at = tokens.iter().rposition(|t| *t == Token::Special('@'))?;
    let (local_tokens, domain_tokens) = (tokens.get(..at)?, tokens.get(at + 1..)?);
    // Words separated by single dots.
    let mut words = Vec::new();
    let mut expect_word = true;
    for token in local_tokens {
        match (token, expect_word) {
            (Token::Atom(_) | Token::Quoted(_), true) => {
                words.push(token);
                expect_word = false;
            }
            (Token::Special('.'), false) => expect_word = true,
            _ => return None,
        }
    }
    if words.is_empty() || expect_word {
        return None;
    }
    let local = local_part(&words)?;
    let domain = domain(domain_tokens)?;
    let address = format!("{local}@{domain}").to_ascii_lowercase();
    (local.len() <= MAX_LOCAL && address.len() <= MAX_ADDRESS).then_some(address)
}

/// One mailbox: `[display-name] "<" [obs-route] addr-spec ">"` or a bare addr-spec.
fn mailbox(tokens: &[Token]) -> Option<Mailbox> {
    match tokens.iter().position(|t| *t == Token::Special('<')) {
        Some(open) => {
            let close = tokens.iter().rposition(|t| *t == Token::Special('>'))?;
            let inside = tokens.get(open + 1..close)?;
            // obs-route: "@a.example,@b.example:" before the address; dropped.
            let inside = match inside.first() {
                Some(Token::Special('@')) => {
                    let colon = inside.iter().position(|t| *t == Token::Special(':'))?;
                    inside.get(colon + 1..)?
                }
                _ => inside,
            };
            if tokens.get(close + 1..).is_some_and(|rest| !rest.is_empty()) {
                return None;
            }
            Some(Mailbox {
                address: addr_spec(inside)?,
                has_display_name: open > 0,
            })
        }
        None => Some(Mailbox {
            address: addr_spec(tokens)?,
            has_display_name: false,
        }),
    }
}

/// Every valid mailbox of an address-list header value (From, To, Cc, …) in
/// order. Groups give their members; what is not an address is left out.
pub fn parse_address_list(value: &str) -> Vec<Mailbox> {
    let tokens = tokens(value);
    let mut found = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut in_angle = false;
    let flush = |current: &mut Vec<Token>, found: &mut Vec<Mailbox>| {
        if let Some(m) = mailbox(current) {
            found.push(m);
        }
        current.clear();
    };
    for token in tokens {
        match token {
            Token::Special('<') => {
                in_angle = true;
                current.push(token);
            }
            Token::Special('>') => {
                in_angle = false;
                current.push(token);
            }
            // A group's name ends at its colon: what came before is not an address.
            Token::Special(':') if !in_angle => current.clear(),
            Token::Special(',' | ';') if !in_angle => flush(&mut current, &mut found),
            other => current.push(other),
        }
        if found.len() >= MAX_MAILBOXES {
            return found;
        }
    }
    flush(&mut current, &mut found);
    found
}

/// The normal form of one address (`ann@x`, `<ann@x>`, `Ann <ann@x>`), or
/// `None` when it is not exactly one valid address.
pub fn normalize(text: &str) -> Option<String> {
    let mut list = parse_address_list(text);
    (list.len() == 1).then(|| list.remove(0).address)
}

/// The address without its plus-tag, for comparing with casebridge's own
/// addresses: `support+CB-1@x` is still `support@x`. A quoted local part has
/// no tag.
pub fn without_tag(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.starts_with('"') => {
            let base = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{base}@{domain}")
        }
        _ => address.to_string(),
    }
}

/// Whether two addresses name one mailbox of casebridge's, tags aside.
pub fn same_base_mailbox(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(a), Some(b)) => without_tag(&a) == without_tag(&b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(value: &str) -> Vec<String> {
        parse_address_list(value).into_iter().map(|m| m.address).collect()
    }

    #[test]
    fn ordinary_forms() {
        assert_eq!(addresses("Ann Customer <Ann@Customer.Example>"), ["ann@customer.example"]);
        assert_eq!(addresses("ann@customer.example"), ["ann@customer.example"]);
        assert_eq!(
            addresses("\"Smith, John\" <john@x.example>, bob@y.example (Bob)"),
            ["john@x.example", "bob@y.example"]
        );
        assert_eq!(addresses("=?utf-8?q?M=C3=BCller?= <m@x.example>"), ["m@x.example"]);
        assert_eq!(
            addresses("team: a@x.example, b@x.example;, c@x.example"),
            ["a@x.example", "b@x.example", "c@x.example"]
        );
        assert_eq!(addresses("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(addresses("a@[192.0.2.1]"), ["a@[192.0.2.1]"]);
        assert_eq!(addresses("Ann\r\n <ann@x.example>"), ["ann@x.example"]);
        assert!(parse_address_list("Ann <ann@x.example>")[0].has_display_name);
        assert!(!parse_address_list("ann@x.example")[0].has_display_name);
    }

    #[test]
    fn quoted_local_parts_are_kept_not_taken_for_names() {
        assert_eq!(addresses("\"john smith\"@bigcorp.example"), ["\"john smith\"@bigcorp.example"]);
        // Quotes that are not needed go: one mailbox, one form.
        assert_eq!(addresses("\"mallory\"@bigcorp.example"), ["mallory@bigcorp.example"]);
        assert_eq!(addresses(r#""a\"b"@x.example"#), [r#""a\"b"@x.example"#]);
        assert_ne!(normalize("\"john smith\"@bigcorp.example"), normalize("mallory@bigcorp.example"));
    }

    #[test]
    fn obsolete_routes_are_dropped() {
        assert_eq!(addresses("<@evil.example:m7@customer.example>"), ["m7@customer.example"]);
        assert_eq!(addresses("X <@a.example,@b.example:m7@customer.example>"), ["m7@customer.example"]);
    }

    #[test]
    fn no_local_part_or_no_domain_is_no_address() {
        for bad in [
            "@bigcorp.example",
            "<@customer.example>",
            "\"\"@x.example",
            "ann@",
            "ann",
            "ann@x..example",
            "ann@-x.example",
            ".ann@x.example",
            "ann.@x.example",
            "a\\b@x.example",
            "<ann@x.example> trailing",
            "",
            "<>",
        ] {
            assert_eq!(addresses(bad), Vec::<String>::new(), "{bad:?}");
        }
        let long = format!("{}@x.example", "a".repeat(65));
        assert_eq!(addresses(&long), Vec::<String>::new());
    }

    #[test]
    fn tags_and_case() {
        assert_eq!(without_tag("support+cb-1@x.example"), "support@x.example");
        assert_eq!(without_tag("\"a+b\"@x.example"), "\"a+b\"@x.example");
        assert!(same_base_mailbox("Escalations+x@Shop.Example", "escalations@shop.example"));
        assert!(!same_base_mailbox("@shop.example", "@shop.example"));
    }

    #[test]
    fn hostile_input_never_panics() {
        for input in [
            "(((((",
            "\"unterminated",
            "[",
            "<<<>>>",
            "a@b(c",
            ":::;;;,,,",
            "\u{202e}@\u{0}",
            "<@:>",
            "<@x:",
        ] {
            let _ = parse_address_list(input);
        }
        let many = "a@x.example,".repeat(5_000);
        assert_eq!(parse_address_list(&many).len(), MAX_MAILBOXES);
    }
}
