//! The project's own MIME corpus (`tests/mail/`, expectations in
//! `tests/mail/expected.toml`) through the inbound Lambda handler: every file
//! ends linked, on a new case, rejected with its reason, or as a duplicate —
//! exactly as the manifest says. Each test runs on the embedded store with
//! raw mail (and copied attachments) in a folder, and again with DynamoDB and
//! S3 on moto when the local stack is up.

use std::path::PathBuf;

use casebridge::ids::CaseId;
use casebridge::model::{Disposition, MailRecord, Record, RecordKind, TimelineEvent};
use casebridge::store::Store;
use casebridge_inbound_email::{InboundFunction, RecordReport};
use casebridge_tests::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    seed: String,
    mail: Vec<Expected>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    file: String,
    expect: String,
    linked_by: Option<String>,
    disposition: Option<String>,
    reason: Option<String>,
    new_text: Option<String>,
    #[serde(default)]
    new_text_contains: Vec<String>,
    #[serde(default)]
    new_text_excludes: Vec<String>,
    subject: Option<String>,
    #[serde(default)]
    subject_excludes: Vec<String>,
    attachments: Option<usize>,
    attachments_copied: Option<bool>,
    timeline: Option<String>,
    #[serde(default)]
    verdicts: VerdictSpec,
    max_mail_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictSpec {
    spam: Option<String>,
    virus: Option<String>,
    spf: Option<String>,
    dkim: Option<String>,
    dmarc: Option<String>,
    dmarc_policy: Option<String>,
}

fn mail_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mail")
}

struct Run {
    store: TestStore,
    mail: MailDrop,
}

fn manifest() -> Manifest {
    toml::from_str(&std::fs::read_to_string(mail_dir().join("expected.toml")).expect("read manifest")).expect("manifest parses")
}

impl Run {
    /// A fresh store and raw-mail drop (table and bucket on the stack).
    async fn new(backend: &Backend) -> Run {
        Run {
            store: backend.store().await,
            mail: backend.mail_drop().await,
        }
    }

    fn function(&self, max_mail_bytes: Option<usize>) -> InboundFunction<TestStore, TestRawMail> {
        let mut config = config("http://127.0.0.1:9/unused", "fully_autonomous");
        if let Some(limit) = max_mail_bytes {
            config.inbound.max_mail_bytes = limit;
        }
        inbound_function(self.store.clone(), self.mail.source(), &config)
    }

    async fn deliver(&self, raw: &[u8], verdicts: &VerdictSpec, max_mail_bytes: Option<usize>) -> RecordReport {
        let ses_id = self.mail.deliver(raw).await;
        let mut event = ses_event(&ses_id, "PASS", "PASS");
        let receipt = &mut event.records[0].ses.receipt;
        for (slot, value) in [
            (&mut receipt.spam_verdict.status, &verdicts.spam),
            (&mut receipt.virus_verdict.status, &verdicts.virus),
            (&mut receipt.spf_verdict.status, &verdicts.spf),
            (&mut receipt.dkim_verdict.status, &verdicts.dkim),
            (&mut receipt.dmarc_verdict.status, &verdicts.dmarc),
        ] {
            if let Some(value) = value {
                *slot = Some(value.clone());
            }
        }
        if verdicts.dmarc_policy.is_some() {
            receipt.dmarc_policy = verdicts.dmarc_policy.clone();
        }
        let mut report = self.function(max_mail_bytes).handle(event).await.expect("inbound handler");
        assert_eq!(report.records.len(), 1);
        report.records.remove(0)
    }

    async fn mail_record(&self, case: &CaseId, ses_id: &str) -> Option<MailRecord> {
        self.store
            .list_records(case, RecordKind::Mail)
            .await
            .expect("list mail")
            .into_iter()
            .filter_map(Record::into_mail)
            .find(|m| m.provider_message_id.as_deref() == Some(ses_id))
    }

    /// The timeline entries written with one mail (same commit, same version).
    async fn timeline_of(&self, case: &CaseId, mail: &MailRecord) -> Vec<TimelineEvent> {
        let version = mail.id.trim_start_matches("MSG#");
        self.store
            .list_records(case, RecordKind::Event)
            .await
            .expect("list events")
            .into_iter()
            .filter_map(Record::into_event)
            .filter(|e| e.id.starts_with(&format!("EVT#{version}#")))
            .collect()
    }
}

fn disposition_parts(d: &Disposition) -> (&'static str, &str) {
    match d {
        Disposition::Accepted => ("accepted", ""),
        Disposition::Ignored(reason) => ("ignored", reason),
        Disposition::Quarantined(reason) => ("quarantined", reason),
    }
}

/// Checks one mail against its expectation; returns what differs.
async fn check(run: &Run, seed: &CaseId, expected: &Expected, report: &RecordReport) -> Vec<String> {
    let mut wrong = Vec::new();
    let outcome = report.outcome.as_str();
    let case = report.case_id.as_deref().and_then(CaseId::parse);
    match expected.expect.as_str() {
        "duplicate" => {
            if outcome != "duplicate" {
                wrong.push(format!("expected a duplicate, got {outcome:?}"));
            }
            return wrong;
        }
        "rejected" => {
            if !outcome.starts_with("rejected") {
                wrong.push(format!("expected rejected, got {outcome:?}"));
                return wrong;
            }
            let rejected = run.store.list_rejected(1000).await.expect("list rejected");
            match rejected.iter().find(|r| r.key == report.ses_message_id) {
                None => wrong.push("no rejected record kept".into()),
                Some(r) => {
                    if let Some(reason) = &expected.reason {
                        if !r.reason.contains(reason.as_str()) {
                            wrong.push(format!("rejected reason {:?} lacks {reason:?}", r.reason));
                        }
                    }
                    if r.raw_location.is_none() {
                        wrong.push("rejected record has no raw location".into());
                    }
                }
            }
            return wrong;
        }
        "linked" if case.as_ref() != Some(seed) => wrong.push(format!("expected the seeded case, got {outcome:?} on {case:?}")),
        "new_case" if !outcome.starts_with("new case") || case.as_ref() == Some(seed) => {
            wrong.push(format!("expected a new case, got {outcome:?} on {case:?}"))
        }
        "linked" | "new_case" => {}
        other => wrong.push(format!("unknown expectation {other:?}")),
    }
    let Some(case) = case else {
        wrong.push("no case".into());
        return wrong;
    };
    let Some(mail) = run.mail_record(&case, &report.ses_message_id).await else {
        wrong.push("no mail record stored".into());
        return wrong;
    };
    let timeline = run.timeline_of(&case, &mail).await;
    let timeline_has = |text: &str| timeline.iter().any(|e| e.detail.contains(text));
    if let Some(by) = &expected.linked_by {
        if !timeline_has(&format!("linked by {by}")) {
            wrong.push(format!(
                "not linked by {by}: {:?}",
                timeline.iter().map(|e| &e.detail).collect::<Vec<_>>()
            ));
        }
    }
    if let Some(text) = &expected.timeline {
        if !timeline_has(text) {
            wrong.push(format!(
                "timeline lacks {text:?}: {:?}",
                timeline.iter().map(|e| &e.detail).collect::<Vec<_>>()
            ));
        }
    }
    let (disposition, reason) = disposition_parts(&mail.disposition);
    if let Some(want) = &expected.disposition {
        if disposition != want {
            wrong.push(format!("disposition {:?}, expected {want}", mail.disposition));
        }
    }
    if let Some(want) = expected.reason.as_deref().filter(|_| disposition != "accepted") {
        if !reason.contains(want) {
            wrong.push(format!("disposition reason {reason:?} lacks {want:?}"));
        }
    }
    if let Some(text) = &expected.new_text {
        if &mail.new_text != text {
            wrong.push(format!("new text {:?}, expected {text:?}", mail.new_text));
        }
    }
    for part in &expected.new_text_contains {
        if !mail.new_text.contains(part.as_str()) {
            wrong.push(format!("new text {:?} lacks {part:?}", mail.new_text));
        }
    }
    for part in &expected.new_text_excludes {
        if mail.new_text.contains(part.as_str()) {
            wrong.push(format!("new text {:?} keeps {part:?}", mail.new_text));
        }
    }
    if let Some(subject) = &expected.subject {
        if &mail.subject != subject {
            wrong.push(format!("subject {:?}, expected {subject:?}", mail.subject));
        }
    }
    for part in &expected.subject_excludes {
        if mail.subject.contains(part.as_str()) {
            wrong.push(format!("subject {:?} keeps {part:?}", mail.subject));
        }
    }
    if let Some(count) = expected.attachments {
        if mail.attachments.len() != count {
            wrong.push(format!("{} attachments, expected {count}", mail.attachments.len()));
        }
    }
    if let Some(copied) = expected.attachments_copied {
        for attachment in &mail.attachments {
            match (&attachment.location, copied) {
                (Some(location), true) => {
                    let size = run.mail.read(location).await.map_or(-1, |content| content.len() as i64);
                    if size != attachment.size as i64 {
                        wrong.push(format!("attachment at {location} has {size} bytes, expected {}", attachment.size));
                    }
                }
                (None, false) => {}
                (location, _) => wrong.push(format!("attachment location {location:?}, expected copied = {copied}")),
            }
        }
    }
    wrong
}

async fn every_project_mail_ends_as_its_manifest_says(backend: Backend) {
    let manifest = manifest();
    let run = Run::new(&backend).await;
    let seeded = run.deliver(manifest.seed.as_bytes(), &VerdictSpec::default(), None).await;
    let seed = CaseId::parse(seeded.case_id.as_deref().expect("seed stored on a case")).expect("case id");

    let mut listed: Vec<String> = std::fs::read_dir(mail_dir())
        .expect("mail folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    listed.sort();
    let in_manifest: Vec<String> = manifest.mail.iter().map(|m| m.file.clone()).collect();
    assert_eq!(listed, in_manifest, "every .eml file has exactly one expectation, in order");
    assert!(listed.len() >= 40, "the corpus has {} files", listed.len());

    let mut failures = Vec::new();
    for expected in &manifest.mail {
        let raw = std::fs::read(mail_dir().join(&expected.file)).expect("read mail");
        let raw = replace(&raw, b"{{CASE}}", seed.as_str().as_bytes());
        let raw = replace(&raw, b"{{case}}", seed.as_str().to_ascii_lowercase().as_bytes());
        let report = run.deliver(&raw, &expected.verdicts, expected.max_mail_bytes).await;
        for problem in check(&run, &seed, expected, &report).await {
            failures.push(format!("{}: {problem}", expected.file));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Delivers like SES + Lambda: the event is retried until the handler succeeds.
async fn deliver_until_done(function: &InboundFunction<TestStore, TestRawMail>, ses_id: &str) -> (RecordReport, usize) {
    for attempt in 0..10 {
        match function.handle(ses_event(ses_id, "PASS", "PASS")).await {
            Ok(mut report) => return (report.records.remove(0), attempt),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt as u64 + 1))).await,
        }
    }
    panic!("delivery {ses_id} never succeeded");
}

async fn concurrent_and_duplicate_deliveries_lose_nothing_and_store_nothing_twice(backend: Backend) {
    let run = Run::new(&backend).await;
    let manifest = manifest();
    let seeded = run.deliver(manifest.seed.as_bytes(), &VerdictSpec::default(), None).await;
    let seed = CaseId::parse(seeded.case_id.as_deref().expect("seed stored")).expect("case id");

    // 12 distinct replies to the seeded case, all at once; 4 of them also
    // redelivered under a second SES id, and 4 redelivered under the same SES id.
    let distinct = 12;
    let mut deliveries = Vec::new();
    for i in 0..distinct {
        let raw = customer_mail(
            "ann@customer.test",
            "Re: My blender arrived broken",
            &format!("burst-{i}@customer.test"),
            Some("seed-1@customer.test"),
            &format!("Detail number {i} about the broken jug."),
        );
        let ses_id = run.mail.deliver(&raw).await;
        deliveries.push(ses_id.clone());
        if i % 3 == 0 {
            deliveries.push(run.mail.deliver(&raw).await);
        }
        if i % 3 == 1 {
            deliveries.push(ses_id);
        }
    }
    let function = std::sync::Arc::new(run.function(None));
    let mut tasks = tokio::task::JoinSet::new();
    for ses_id in deliveries.clone() {
        let function = function.clone();
        tasks.spawn(async move { deliver_until_done(&function, &ses_id).await });
    }
    let mut stored = 0;
    let mut duplicates = 0;
    let mut retries = 0;
    while let Some(done) = tasks.join_next().await {
        let (report, attempts) = done.expect("delivery task");
        retries += attempts;
        match report.outcome.as_str() {
            "duplicate" => duplicates += 1,
            outcome if outcome.starts_with("added to case") => {
                assert_eq!(report.case_id.as_deref(), Some(seed.as_str()));
                stored += 1
            }
            other => panic!("unexpected outcome {other}"),
        }
    }
    assert_eq!(stored, distinct, "every distinct mail stored once ({retries} retried deliveries)");
    assert_eq!(duplicates, deliveries.len() - distinct);

    // Every stored mail reaches the agent exactly once: in the turn already
    // requested, or waiting for the next one.
    let mails: Vec<MailRecord> = run
        .store
        .list_records(&seed, RecordKind::Mail)
        .await
        .unwrap()
        .into_iter()
        .filter_map(Record::into_mail)
        .collect();
    assert_eq!(mails.len(), distinct + 1, "the seed and each burst mail, once");
    let case = run.store.get_case(&seed).await.unwrap().expect("case");
    let mut for_agent: Vec<String> = run
        .store
        .list_records(&seed, RecordKind::WorkItem)
        .await
        .unwrap()
        .into_iter()
        .filter_map(Record::into_work_item)
        .flat_map(|w| w.mail_ids)
        .chain(case.pending_mail.iter().cloned())
        .collect();
    for_agent.sort();
    let mut all: Vec<String> = mails.iter().map(|m| m.id.clone()).collect();
    all.sort();
    assert_eq!(for_agent, all, "each mail in exactly one turn (or queued for the next)");
}

async fn with_case_creation_off_unlinked_mail_is_held_and_the_queue_notified_once(backend: Backend) {
    let run = Run::new(&backend).await;
    let mut tap = backend.tap(&run.store).await;
    let mut function = run.function(None);
    function.config.inbound.create_cases = false;
    function.config.mail.queue_address = format!("{}@shop.example", unique("queue"));
    let raw = customer_mail(
        "zed@customer.test",
        "Refund",
        "held-1@customer.test",
        None,
        "Please refund order 77.",
    );
    let ses_id = run.mail.deliver(&raw).await;
    let report = function
        .handle(ses_event(&ses_id, "PASS", "PASS"))
        .await
        .expect("inbound")
        .records
        .remove(0);
    assert_eq!(report.outcome, "new case; no agent turn");
    let case_id = CaseId::parse(report.case_id.as_deref().unwrap()).unwrap();
    let case = run.store.get_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.status, casebridge::model::CaseStatus::Escalated);
    assert!(case.agent.is_none(), "no agent for a held case");
    assert!(case.escalation.unwrap().reason.contains("case creation is off"));

    let outcome = casebridge_outcome_actions::OutcomeFunction {
        store: run.store.clone(),
        mailer: backend.mailer(),
        config: function.config.clone(),
        clock: clock(),
    };
    let event = tap.next_event().await;
    // Lambda may deliver a stream batch twice: the notice still goes once.
    let again: aws_lambda_events::event::dynamodb::Event = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    for batch in [event, again] {
        let response = outcome.handle(batch).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let notices = backend.sent_to(&function.config.mail.queue_address).await;
    assert_eq!(notices.len(), 1, "one notice to the queue: {notices:?}");
    assert!(notices[0].mentions(case_id.as_str()), "the notice names the case: {:?}", notices[0]);
}

async fn one_bad_record_in_an_event_never_loses_the_others(backend: Backend) {
    let run = Run::new(&backend).await;
    let good = run
        .mail
        .deliver(&customer_mail(
            "nia@customer.test",
            "Refund",
            "multi-1@customer.test",
            None,
            "Please refund order 5.",
        ))
        .await;
    let garbage = run.mail.deliver(b"\x00\x01 not a mail").await;
    let missing = "no-such-object".to_string();
    let mut event = ses_event(&good, "PASS", "PASS");
    for id in [&garbage, &missing] {
        let mut record = event.records[0].clone();
        record.ses.mail.message_id = Some(id.clone());
        event.records.push(record);
    }
    let function = run.function(None);
    let report = function
        .handle(event.clone())
        .await
        .expect("permanent faults are recorded, not retried");
    let outcomes: Vec<&str> = report.records.iter().map(|r| r.outcome.as_str()).collect();
    assert!(outcomes[0].starts_with("new case"), "{outcomes:?}");
    assert!(outcomes[1].starts_with("rejected"), "{outcomes:?}");
    assert!(
        outcomes[2].starts_with("rejected: raw mail") && outcomes[2].contains("not found"),
        "{outcomes:?}"
    );
    let rejected = run.store.list_rejected(100).await.unwrap();
    assert!(rejected.iter().any(|r| r.key == garbage) && rejected.iter().any(|r| r.key == missing));

    // Lambda retrying the whole event (another record failed transiently) changes nothing.
    let again = function.handle(event).await.expect("retry");
    assert_eq!(again.records[0].outcome, "duplicate");

    // A transient fault (the raw mail is unreachable) fails the invocation so
    // Lambda retries it, after the good record was already stored.
    let broken = InboundFunction {
        raw_mail: run.mail.unreachable(),
        ..run.function(None)
    };
    let fresh = run
        .mail
        .deliver(&customer_mail(
            "nia@customer.test",
            "Refund",
            "multi-2@customer.test",
            None,
            "And order 6.",
        ))
        .await;
    assert!(
        broken.handle(ses_event(&fresh, "PASS", "PASS")).await.is_err(),
        "a transient fault is retried"
    );
    let later = function
        .handle(ses_event(&fresh, "PASS", "PASS"))
        .await
        .expect("the retry succeeds");
    assert!(later.records[0].outcome.starts_with("new case"), "{:?}", later.records);
}

on_every_backend!(
    every_project_mail_ends_as_its_manifest_says,
    with_case_creation_off_unlinked_mail_is_held_and_the_queue_notified_once,
    one_bad_record_in_an_event_never_loses_the_others,
);
on_every_backend!(with(flavor = "multi_thread", worker_threads = 4): concurrent_and_duplicate_deliveries_lose_nothing_and_store_nothing_twice);
