//! Raw MIME (and SES verdicts taken from the last two bytes) → everything the
//! inbound step decides without I/O: parse, new text, screening, the case
//! references it would link by, thanks-only, attachment copies. None of it may
//! panic, and the decisions must hold their invariants.
#![no_main]

use std::sync::OnceLock;

use casebridge::config::Config;
use casebridge::ids::CaseId;
use casebridge::inbound::{attachment_bodies, is_thanks_only, parse_mail, screen, verdict_notes, Verdicts};
use casebridge::model::Disposition;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 256 * 1024;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_toml("[mail]\nfrom_address = \"support@shop.example\"\nqueue_address = \"queue@shop.example\"\n").expect("config")
    })
}

fn verdict(bits: u8) -> Option<String> {
    match bits & 3 {
        0 => None,
        1 => Some("PASS".into()),
        2 => Some("FAIL".into()),
        _ => Some("GRAY".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    // Verdicts come from the last two bytes, so seed mails keep their headers intact.
    let (raw, flags) = match data.split_last_chunk::<2>() {
        Some((raw, flags)) => (raw, *flags),
        None => (data, [0, 0]),
    };
    let verdicts = Verdicts {
        spam: verdict(flags[0]),
        virus: verdict(flags[0] >> 2),
        spf: verdict(flags[0] >> 4),
        dkim: verdict(flags[0] >> 6),
        dmarc: verdict(flags[1]),
        dmarc_policy: ["none", "quarantine", "reject", ""].get(usize::from(flags[1] >> 2 & 3)).map(|s| s.to_string()),
    };
    let Ok(mail) = parse_mail(raw, LIMIT) else { return };
    let disposition = screen(&mail, &verdicts, config());
    let _ = verdict_notes(&verdicts, config());
    if verdicts.virus.as_deref() == Some("FAIL") {
        assert!(matches!(disposition, Disposition::Quarantined(_)), "virus FAIL must quarantine");
    }
    if mail.from.is_none() {
        assert!(!matches!(disposition, Disposition::Accepted), "mail without a sender is never accepted");
    }
    assert!(mail.subject.chars().all(|c| !c.is_control()), "subject keeps a control character");
    assert!(mail.new_text.len() <= mail.body_text.len(), "new text longer than the body");
    let _ = is_thanks_only(&mail.new_text);
    let _ = CaseId::find_in_subject(&mail.subject);
    for address in mail.recipients() {
        let _ = CaseId::from_plus_address(address);
    }
    let _ = mail.referenced_ids().count();
    let bodies = attachment_bodies(raw, LIMIT);
    assert_eq!(bodies.len(), mail.attachments.len(), "attachment copies and listing disagree");
});
