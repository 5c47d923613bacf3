//! The part of a reply the customer wrote this time: quoted history and
//! signatures removed. A first version covering `>` quoting, "On … wrote:",
//! Outlook's "-----Original Message-----" / "From: … Sent: …" blocks and the
//! `-- ` signature separator, and the one-line signatures mobile clients add.

/// Returns the new text of a reply, trimmed. Falls back to the whole body when
/// stripping would leave nothing (a mail that is all quote still says something).
pub fn extract_new_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        // "-- " is the standard signature separator; many clients drop its space.
        if line.trim_end() == "--" {
            break;
        }
        if is_original_message_marker(trimmed) {
            break;
        }
        if is_mobile_signature(trimmed) {
            break;
        }
        if is_outlook_header_block(&lines[i..]) {
            break;
        }
        if is_attribution(trimmed, lines.get(i + 1).map(|l| l.trim())) {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        kept.push(line);
    }
    let text = kept.join("\n").trim().to_string();
    if text.is_empty() {
        body.trim().to_string()
    } else {
        text
    }
}

fn is_original_message_marker(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    (lower.starts_with("-----") && lower.contains("original message"))
        || (lower.starts_with("-----") && lower.contains("forwarded message"))
        || lower.starts_with("________________________________")
}

/// "Sent from my iPhone", "Get Outlook for Android" and their translations.
fn is_mobile_signature(line: &str) -> bool {
    // A signature is a short line of its own, not a sentence that starts alike.
    if line.len() > 80 || line.split_whitespace().count() > 7 || line.contains(',') {
        return false;
    }
    let lower = line.to_lowercase();
    const STARTS: &[&str] = &[
        "sent from my ",
        "sent from mail for windows",
        "sent from outlook",
        "sent from yahoo mail",
        "sent from the all new aol app",
        "sent via the samsung galaxy",
        "sent from samsung mobile",
        "get outlook for ios",
        "get outlook for android",
        "envoyé de mon ",
        "envoyé depuis mon ",
        "von meinem ",
        "gesendet von meinem ",
        "enviado desde mi ",
        "inviato da ",
        "verzonden met mijn ",
        "verstuurd vanaf mijn ",
    ];
    STARTS.iter().any(|s| lower.starts_with(s))
}

/// "From: …" followed within a few lines by "Sent: …" / "Date: …" and "Subject:".
fn is_outlook_header_block(lines: &[&str]) -> bool {
    let first = lines.first().map(|l| l.trim().to_ascii_lowercase()).unwrap_or_default();
    if !first.starts_with("from:") {
        return false;
    }
    lines.iter().skip(1).take(5).any(|l| {
        let l = l.trim().to_ascii_lowercase();
        l.starts_with("sent:") || l.starts_with("date:")
    })
}

/// "On Mon, 1 Jan 2026 at 10:00, Someone <x@y> wrote:", possibly wrapped over two lines.
fn is_attribution(line: &str, next: Option<&str>) -> bool {
    let starts = line.starts_with("On ") || line.starts_with("Le ") || line.starts_with("Am ") || line.starts_with("El ");
    if !starts {
        return false;
    }
    let ends = |l: &str| {
        let l = l.trim_end();
        l.ends_with("wrote:") || l.ends_with("a écrit :") || l.ends_with("a écrit:") || l.ends_with("schrieb:") || l.ends_with("escribió:")
    };
    ends(line) || next.is_some_and(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_common_reply_styles() {
        let gmail = "It was $42.\n\nOn Tue, 24 Nov 2026 at 10:00, Support <support@example.com> wrote:\n> What was the amount?\n";
        assert_eq!(extract_new_text(gmail), "It was $42.");
        let wrapped = "Yes.\n\nOn Tue, 24 Nov 2026 at 10:00, Example Support\n<support@example.com> wrote:\n> q\n";
        assert_eq!(extract_new_text(wrapped), "Yes.");
        let outlook = "Sure thing\r\n\r\nFrom: Support <support@example.com>\r\nSent: Tuesday\r\nTo: me\r\nSubject: Re: x\r\n\r\nold";
        assert_eq!(extract_new_text(outlook), "Sure thing");
        let original = "New words\n-----Original Message-----\nold words";
        assert_eq!(extract_new_text(original), "New words");
        let signature = "Body\n-- \nAnn\nPhone 123";
        assert_eq!(extract_new_text(signature), "Body");
        assert_eq!(extract_new_text("> only quote"), "> only quote");
        for mobile in [
            "Sent from my iPhone",
            "Get Outlook for Android<https://aka.ms/ghei36>",
            "Envoyé de mon iPhone",
            "Von meinem iPhone gesendet",
            "Sent from my Galaxy",
        ] {
            assert_eq!(
                extract_new_text(&format!("Still broken.\n\n{mobile}\n")),
                "Still broken.",
                "{mobile}"
            );
        }
        let sentence = "I tried twice.\nSent from my account page, the order failed both times.";
        assert_eq!(
            extract_new_text(sentence),
            sentence,
            "a sentence that only starts like a signature is kept"
        );
    }
}
