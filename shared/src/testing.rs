//! Conformance suites shared by every adapter of a port: the embedded and
//! DynamoDB stores run the same store suite, the outbox and SES mailers the
//! same mail suite. Each check panics with a message on failure.

use std::future::Future;

use chrono::{Duration, TimeZone, Utc};

use crate::ids::CaseId;
use crate::mail::{compose, Composition, MailSender, OutgoingMail, SendReceipt};
use crate::model::*;
use crate::store::{CaseWrite, Commit, CommitError, MessageIndexEntry, RecordWrite, Store};

pub fn sample_case(id: &CaseId) -> Case {
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap_or_else(Utc::now);
    Case {
        id: id.clone(),
        version: 0,
        status: CaseStatus::AgentWorking,
        workflow: WorkflowMode::FullyAutonomous,
        subject: "Refund for order 1234 — ünïcode ✓".into(),
        customer: "ann@customer.test".into(),
        customer_name: Some("Ann".into()),
        conversation_id: "conv-1".into(),
        intent: Some("refund".into()),
        intent_confidence: Some(0.9),
        intent_scores: Vec::new(),
        agent: Some("refunds".into()),
        participants: vec!["ann@customer.test".into()],
        thread_message_ids: vec!["m1@customer.test".into()],
        last_inbound_message_id: Some("m1@customer.test".into()),
        turn_in_flight: None,
        pending_mail: Vec::new(),
        escalation: None,
        workflow_name: None,
        follow_up: None,
        resolution: None,
        closed_at: None,
        reopened: 0,
        created_at: at,
        updated_at: at,
    }
}

fn event(id: &str, detail: &str) -> Record {
    Record::Event(TimelineEvent {
        id: id.into(),
        at: Utc::now(),
        kind: "test".into(),
        detail: detail.into(),
    })
}

fn outbound(id: &str, status: OutboundStatus) -> Record {
    Record::Outbound(OutboundMail {
        id: id.into(),
        kind: MailKind::Question,
        origin: Some("TURN#1".into()),
        from: "support@example.com".into(),
        to: vec!["ann@customer.test".into()],
        subject: "Re: x".into(),
        body: "body".into(),
        message_id: format!("{id}@example.com"),
        in_reply_to: None,
        references: Vec::new(),
        status,
        provider_message_id: None,
        error: None,
        raw_mime: None,
        created_at: Utc::now(),
        sent_at: None,
    })
}

async fn create_case<S: Store>(store: &S) -> Case {
    let id = CaseId::generate("CT");
    let mut commit = Commit::new(id.clone());
    commit.case = Some(CaseWrite::Create(sample_case(&id)));
    store.commit(commit).await.expect("create case");
    store.get_case(&id).await.expect("read case").expect("case exists")
}

/// Runs every store check against one store. Uses fresh case ids, so a shared
/// table is fine.
pub async fn run_store_conformance<S: Store>(store: &S) {
    cases_round_trip_with_versions(store).await;
    stale_version_conflicts_and_writes_nothing(store).await;
    create_only_records_claim_once(store).await;
    conditional_replace_checks_status(store).await;
    message_index_dedupes_and_links(store).await;
    records_list_by_kind_in_key_order(store).await;
    rejected_mail_is_kept_newest_first(store).await;
    concurrent_updates_one_wins(store).await;
    invalid_commits_are_refused(store).await;
    due_index_lists_due_turns_only(store).await;
    queues_list_pending_drafts_and_escalated_cases(store).await;
    daily_counters_add_with_their_commit_only(store).await;
    scanned_cases_are_the_cases_with_their_records(store).await;
}

/// `scan_cases` answers what reading case by case answers: the cases
/// `select` keeps, in id order, with their records of the kinds asked for
/// (others left out) in key order, at most `limit` of them.
async fn scanned_cases_are_the_cases_with_their_records<S: Store>(store: &S) {
    let mut ids = Vec::new();
    let mut extra = None;
    for n in 0..4 {
        let id = CaseId::generate("CT");
        let mut commit = Commit::new(id.clone());
        commit.case = Some(CaseWrite::Create(sample_case(&id)));
        commit.records = vec![
            RecordWrite::Create(outbound(&format!("OUT#{n:04}"), OutboundStatus::Pending)),
            RecordWrite::Create(turn("TURN#0000000001", TurnStatus::Done, None)),
            RecordWrite::Create(event("EVT#0000000001#000", "not asked for")),
        ];
        if n == 1 {
            commit.records.push(RecordWrite::Create(outbound("OUT#9999", OutboundStatus::Sent)));
            extra = Some(id.clone());
        }
        store.commit(commit).await.expect("seed a case");
        ids.push(id);
    }
    let extra = extra.expect("the case with two mails");
    // Three of ours, one left out; the store may hold other tests' cases too.
    let left_out = ids.iter().find(|id| **id != extra).cloned().expect("another case");
    ids.retain(|id| *id != left_out);
    ids.sort();
    let wanted: std::collections::HashSet<CaseId> = ids.iter().cloned().collect();
    let kinds = [RecordKind::Turn, RecordKind::Outbound];
    let keys = |case: &Case, records: &[Record]| (case.id.clone(), records.iter().map(|r| r.key().to_string()).collect::<Vec<_>>());
    let scanned = store
        .scan_cases(&kinds, usize::MAX, |c| wanted.contains(&c.id), keys)
        .await
        .expect("scan");
    let mut expected = Vec::new();
    for id in &ids {
        let case = store.get_case(id).await.expect("read").expect("a case");
        let mut records = Vec::new();
        for kind in kinds {
            records.extend(store.list_records(id, kind).await.expect("list"));
        }
        records.sort_by(|a, b| a.key().cmp(b.key()));
        expected.push(keys(&case, &records));
    }
    assert_eq!(scanned, expected);
    let with_two = scanned.iter().find(|(id, _)| *id == extra).expect("the case with two mails");
    assert_eq!(with_two.1, ["OUT#0001", "OUT#9999", "TURN#0000000001"], "{scanned:?}");
    let two = store
        .scan_cases(&kinds, 2, |c| wanted.contains(&c.id), keys)
        .await
        .expect("scan with a limit");
    assert_eq!(two, expected[..2], "the limit counts kept cases");
}

/// The day's count of refund cases opened.
async fn refunds_opened<S: Store>(store: &S, day: chrono::NaiveDate) -> u64 {
    let counts = store.daily_counts(day, day).await.expect("read counters");
    counts
        .iter()
        .filter(|c| c.intent == "refund" && c.fact == crate::metrics::Fact::CaseOpened)
        .map(|c| c.value)
        .sum()
}

/// The counters move with the commit that carries them, and only then: a
/// commit refused by its guard adds nothing.
async fn daily_counters_add_with_their_commit_only<S: Store>(store: &S) {
    use crate::metrics::Fact;
    use crate::store::{Count, StoreError};
    // A day no other run of a shared table uses (days after year 2100).
    let offset = i64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 256 + i64::from(uuid::Uuid::new_v4().as_bytes()[1]);
    let day = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap_or_default() + Duration::days(offset);
    let next = day + Duration::days(1);
    let count = |day, intent: &str, fact| Count {
        day,
        intent: intent.into(),
        agent: Some("refunds".into()),
        fact,
    };
    let id = CaseId::generate("CT");
    let mut commit = Commit::new(id.clone());
    commit.case = Some(CaseWrite::Create(sample_case(&id)));
    commit.counts = vec![
        count(day, "refund", Fact::CaseOpened),
        count(day, "refund", Fact::Escalated),
        count(day, "refund", Fact::CaseOpened),
        count(day, "billing", Fact::AgentFailed),
        count(next, "refund", Fact::DraftSentEdited),
    ];
    store.commit(commit).await.expect("commit with counters");
    let mut got: Vec<(chrono::NaiveDate, String, &str, u64)> = store
        .daily_counts(day, next)
        .await
        .expect("read counters")
        .into_iter()
        .map(|c| (c.day, c.intent, c.fact.metric_name(), c.value))
        .collect();
    got.sort();
    let want = vec![
        (day, "billing".to_string(), "AgentFailures", 1),
        (day, "refund".to_string(), "CasesOpened", 2),
        (day, "refund".to_string(), "Escalations", 1),
        (next, "refund".to_string(), "DraftsSentEdited", 1),
    ];
    assert_eq!(got, want);
    assert_eq!(store.daily_counts(next, next).await.unwrap().len(), 1, "one day only");

    // The same facts on a commit its version guard refuses: nothing added.
    let case = store.get_case(&id).await.unwrap().expect("case");
    let mut stale = case.clone();
    stale.version = 0;
    let mut refused = Commit::new(id.clone());
    refused.case = Some(CaseWrite::Update(stale));
    refused.counts = vec![count(day, "refund", Fact::CaseOpened)];
    assert!(matches!(store.commit(refused).await, Err(CommitError::VersionConflict(_))));
    // A create-only claim already taken: nothing added either.
    let mut again = Commit::new(id.clone());
    again.case = Some(CaseWrite::Create(sample_case(&id)));
    again.counts = vec![count(day, "refund", Fact::CaseOpened)];
    assert!(store.commit(again).await.is_err());
    let opened = refunds_opened(store, day).await;
    assert_eq!(opened, 2, "refused commits add nothing");

    // A guarded update adds to the same counters.
    let mut update = Commit::new(id.clone());
    update.case = Some(CaseWrite::Update(case));
    update.counts = vec![count(day, "refund", Fact::CaseOpened)];
    store.commit(update).await.expect("update with counters");
    let opened = refunds_opened(store, day).await;
    assert_eq!(opened, 3);

    // Counters alone are not a commit; periods are bounded.
    let mut alone = Commit::new(id.clone());
    alone.counts = vec![count(day, "refund", Fact::CaseOpened)];
    assert!(matches!(
        store.commit(alone).await,
        Err(CommitError::Store(StoreError::InvalidCommit(_)))
    ));
    assert!(matches!(store.daily_counts(next, day).await, Err(StoreError::OutOfRange(_))));
    let far = day + Duration::days(crate::store::MAX_COUNTER_DAYS);
    assert!(matches!(store.daily_counts(day, far).await, Err(StoreError::OutOfRange(_))));
}

async fn queues_list_pending_drafts_and_escalated_cases<S: Store>(store: &S) {
    use crate::store::Queue;
    let case = create_case(store).await;
    let draft = |id: &str, status| {
        Record::Draft(Draft {
            id: id.into(),
            turn: "TURN#0000000001".into(),
            kind: MailKind::Question,
            to: vec!["ann@customer.test".into()],
            subject: "Re: x".into(),
            body: "Which order?".into(),
            reason: "review".into(),
            answer: crate::protocol::AgentResponse {
                response_type: crate::protocol::ResponseType::Question,
                message: Some("Which order?".into()),
                handling_options: None,
            },
            status,
            created_at: Utc::now(),
            edited: false,
        })
    };
    let mut commit = Commit::new(case.id.clone());
    commit
        .records
        .push(RecordWrite::Create(draft("DRAFT#0000000001#question", DraftStatus::PendingReview)));
    commit
        .records
        .push(RecordWrite::Create(draft("DRAFT#0000000002#question", DraftStatus::Sent)));
    let mut escalated = case.clone();
    escalated.status = CaseStatus::Escalated;
    escalated.escalation = Some(Escalation {
        queue: "tier-1".into(),
        reason: "test".into(),
        at: Utc::now(),
    });
    commit.case = Some(CaseWrite::Update(escalated.clone()));
    store.commit(commit).await.unwrap();
    let drafts: Vec<String> = store
        .list_queue(Queue::Drafts, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|q| q.case_id == case.id)
        .map(|q| q.key)
        .collect();
    assert_eq!(drafts, vec!["DRAFT#0000000001#question"], "only pending drafts are queued");
    assert!(store
        .list_queue(Queue::Escalated, 10_000)
        .await
        .unwrap()
        .iter()
        .any(|q| q.case_id == case.id));
    let mut back = escalated;
    back.version = 2;
    back.status = CaseStatus::Idle;
    back.escalation = None;
    let mut commit = Commit::new(case.id.clone());
    commit.case = Some(CaseWrite::Update(back));
    store.commit(commit).await.unwrap();
    assert!(
        !store
            .list_queue(Queue::Escalated, 10_000)
            .await
            .unwrap()
            .iter()
            .any(|q| q.case_id == case.id),
        "a handed-back case leaves the queue"
    );
}

fn turn(id: &str, status: TurnStatus, due_at: Option<chrono::DateTime<Utc>>) -> Record {
    Record::Turn(AgentTurn {
        id: id.into(),
        work_item: id.replacen("TURN#", "WORK#", 1),
        agent: "refunds".into(),
        mail_ids: vec!["MSG#0000000001".into()],
        status,
        started_at: Utc::now(),
        attempts: 1,
        result: None,
        finished_at: None,
        due_at,
        remote_task: None,
    })
}

async fn due_index_lists_due_turns_only<S: Store>(store: &S) {
    let case = create_case(store).await;
    // Far in the past, so other checks' records (due now or later) sort after these.
    let base = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now);
    let mut commit = Commit::new(case.id.clone());
    commit.records.push(RecordWrite::Create(turn(
        "TURN#0000000001",
        TurnStatus::AwaitingCallback,
        Some(base + Duration::minutes(1)),
    )));
    commit
        .records
        .push(RecordWrite::Create(turn("TURN#0000000002", TurnStatus::InFlight, Some(base))));
    commit.records.push(RecordWrite::Create(turn(
        "TURN#0000000003",
        TurnStatus::InFlight,
        Some(base + Duration::days(1)),
    )));
    commit
        .records
        .push(RecordWrite::Create(turn("TURN#0000000004", TurnStatus::Done, Some(base))));
    store.commit(commit).await.unwrap();
    let mine = |items: Vec<crate::store::DueItem>| {
        items
            .into_iter()
            .filter(|d| d.case_id == case.id)
            .map(|d| d.key)
            .collect::<Vec<_>>()
    };
    let due = mine(store.list_due(RecordKind::Turn, base + Duration::minutes(1), 1000).await.unwrap());
    assert_eq!(
        due,
        vec!["TURN#0000000002", "TURN#0000000001"],
        "due turns, earliest first; done turns are not due"
    );
    let mut answered = Commit::new(case.id.clone());
    answered
        .records
        .push(RecordWrite::Replace(turn("TURN#0000000002", TurnStatus::Answered, Some(base))));
    store.commit(answered).await.unwrap();
    let due = mine(store.list_due(RecordKind::Turn, base + Duration::minutes(1), 1000).await.unwrap());
    assert_eq!(due, vec!["TURN#0000000001"], "a rewritten turn leaves the due index");
}

async fn cases_round_trip_with_versions<S: Store>(store: &S) {
    let case = create_case(store).await;
    assert_eq!(case.version, 1, "a created case has version 1");
    let mut expected = sample_case(&case.id);
    expected.version = 1;
    assert_eq!(case, expected, "case round-trips unchanged");
    let mut updated = case.clone();
    updated.status = CaseStatus::WaitingOnCustomer;
    let mut commit = Commit::new(case.id.clone());
    commit.case = Some(CaseWrite::Update(updated));
    store.commit(commit).await.expect("update with current version");
    let read = store.get_case(&case.id).await.unwrap().unwrap();
    assert_eq!(read.version, 2);
    assert_eq!(read.status, CaseStatus::WaitingOnCustomer);
    assert!(
        store.get_case(&CaseId::generate("CT")).await.unwrap().is_none(),
        "unknown case reads as None"
    );
    let mut again = Commit::new(case.id.clone());
    again.case = Some(CaseWrite::Create(sample_case(&case.id)));
    assert!(
        matches!(store.commit(again).await, Err(CommitError::AlreadyExists(crate::store::Existing::Case(id))) if id == case.id),
        "creating an existing case fails, naming the case"
    );
}

async fn stale_version_conflicts_and_writes_nothing<S: Store>(store: &S) {
    let case = create_case(store).await;
    let mut stale = case.clone();
    stale.version = 0;
    let mut commit = Commit::new(case.id.clone());
    commit.case = Some(CaseWrite::Update(stale));
    commit
        .records
        .push(RecordWrite::Create(event("EVT#0000000002#000", "must not be written")));
    commit.message_index.push(MessageIndexEntry {
        message_id: format!("stale-{}@x", case.id),
        case_id: case.id.clone(),
        must_be_new: true,
    });
    assert!(matches!(store.commit(commit).await, Err(CommitError::VersionConflict(_))));
    assert!(
        store.get_record(&case.id, "EVT#0000000002#000").await.unwrap().is_none(),
        "a failed commit writes no record"
    );
    assert!(
        store.case_for_message_id(&format!("stale-{}@x", case.id)).await.unwrap().is_none(),
        "a failed commit writes no index entry"
    );
    assert_eq!(store.get_case(&case.id).await.unwrap().unwrap().version, 1);
}

async fn create_only_records_claim_once<S: Store>(store: &S) {
    let case = create_case(store).await;
    let mut first = Commit::new(case.id.clone());
    first
        .records
        .push(RecordWrite::Create(outbound("OUT#1#question", OutboundStatus::Pending)));
    store.commit(first).await.expect("first create");
    let mut second = Commit::new(case.id.clone());
    let mut bumped = case.clone();
    bumped.status = CaseStatus::Closed;
    second.case = Some(CaseWrite::Update(bumped));
    second
        .records
        .push(RecordWrite::Create(outbound("OUT#1#question", OutboundStatus::Pending)));
    assert!(
        matches!(store.commit(second).await, Err(CommitError::AlreadyExists(crate::store::Existing::Record(key))) if key.ends_with("/OUT#1#question")),
        "second create of a record fails, naming the record"
    );
    assert_eq!(
        store.get_case(&case.id).await.unwrap().unwrap().status,
        CaseStatus::AgentWorking,
        "and the case write in that commit is not applied"
    );
}

async fn conditional_replace_checks_status<S: Store>(store: &S) {
    let case = create_case(store).await;
    let mut create = Commit::new(case.id.clone());
    create
        .records
        .push(RecordWrite::Create(outbound("OUT#2#question", OutboundStatus::Pending)));
    store.commit(create).await.unwrap();
    let claim = |status| {
        let mut c = Commit::new(case.id.clone());
        c.records.push(RecordWrite::ReplaceIfStatus {
            record: outbound("OUT#2#question", status),
            expected_status: "pending",
        });
        c
    };
    store.commit(claim(OutboundStatus::Sending)).await.expect("pending → sending");
    assert!(
        matches!(
            store.commit(claim(OutboundStatus::Sending)).await,
            Err(CommitError::StateMismatch(_))
        ),
        "a second claim fails"
    );
    let read = store
        .get_record(&case.id, "OUT#2#question")
        .await
        .unwrap()
        .and_then(Record::into_outbound)
        .unwrap();
    assert_eq!(read.status, OutboundStatus::Sending);
    let mut missing = Commit::new(case.id.clone());
    missing.records.push(RecordWrite::ReplaceIfStatus {
        record: outbound("OUT#3#question", OutboundStatus::Sent),
        expected_status: "pending",
    });
    assert!(
        matches!(store.commit(missing).await, Err(CommitError::StateMismatch(_))),
        "conditional replace of a missing record fails"
    );
    let mut replace = Commit::new(case.id.clone());
    replace
        .records
        .push(RecordWrite::Replace(outbound("OUT#2#question", OutboundStatus::Sent)));
    store.commit(replace).await.expect("plain replace");
}

async fn message_index_dedupes_and_links<S: Store>(store: &S) {
    let case = create_case(store).await;
    // Hostile ids: long, non-ASCII, odd characters. Keys are hashed, so all work.
    let ids = [
        format!("{}@customer.test", case.id),
        format!("{}{}@x", "a".repeat(3000), case.id),
        format!("ünï\"code'{}@例え.jp", case.id),
    ];
    for id in &ids {
        let mut commit = Commit::new(case.id.clone());
        commit.message_index.push(MessageIndexEntry {
            message_id: id.clone(),
            case_id: case.id.clone(),
            must_be_new: true,
        });
        store.commit(commit).await.expect("first index entry");
        assert_eq!(store.case_for_message_id(id).await.unwrap().as_ref(), Some(&case.id));
        let mut dup = Commit::new(case.id.clone());
        dup.message_index.push(MessageIndexEntry {
            message_id: id.clone(),
            case_id: case.id.clone(),
            must_be_new: true,
        });
        assert!(
            matches!(
                store.commit(dup).await,
                Err(CommitError::AlreadyExists(crate::store::Existing::Message(_)))
            ),
            "the same Message-ID twice is refused"
        );
        let mut alias = Commit::new(case.id.clone());
        alias.message_index.push(MessageIndexEntry {
            message_id: id.clone(),
            case_id: case.id.clone(),
            must_be_new: false,
        });
        store.commit(alias).await.expect("overwriting entries are allowed");
    }
    assert!(store.case_for_message_id("never-seen@x").await.unwrap().is_none());
}

async fn records_list_by_kind_in_key_order<S: Store>(store: &S) {
    let case = create_case(store).await;
    let other = create_case(store).await;
    let mut commit = Commit::new(case.id.clone());
    for key in ["EVT#0000000003#001", "EVT#0000000003#000", "EVT#0000000002#000"] {
        commit.records.push(RecordWrite::Create(event(key, key)));
    }
    commit
        .records
        .push(RecordWrite::Create(outbound("OUT#9#question", OutboundStatus::Pending)));
    store.commit(commit).await.unwrap();
    let mut noise = Commit::new(other.id.clone());
    noise.records.push(RecordWrite::Create(event("EVT#0000000001#000", "other case")));
    store.commit(noise).await.unwrap();
    let events: Vec<String> = store
        .list_records(&case.id, RecordKind::Event)
        .await
        .unwrap()
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(events, vec!["EVT#0000000002#000", "EVT#0000000003#000", "EVT#0000000003#001"]);
    assert_eq!(store.list_records(&case.id, RecordKind::Outbound).await.unwrap().len(), 1);
    assert!(store.list_records(&case.id, RecordKind::Draft).await.unwrap().is_empty());
    let ids = store.list_case_ids(100_000).await.unwrap();
    assert!(ids.contains(&case.id) && ids.contains(&other.id), "list_case_ids finds both cases");
}

async fn rejected_mail_is_kept_newest_first<S: Store>(store: &S) {
    let base = Utc::now() + Duration::days(3650);
    let key = CaseId::generate("RJ").to_string();
    for (i, reason) in ["older", "newer"].iter().enumerate() {
        let rejected = RejectedMail {
            key: format!("{key}-{i}"),
            received_at: base + Duration::seconds(i as i64),
            reason: reason.to_string(),
            from: None,
            subject: None,
            message_id: None,
            raw_location: None,
            size: 10,
        };
        store.record_rejected(rejected.clone()).await.unwrap();
        store.record_rejected(rejected).await.expect("recording twice is fine");
    }
    let listed = store.list_rejected(2).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(), vec!["newer", "older"]);
}

async fn concurrent_updates_one_wins<S: Store>(store: &S) {
    let case = create_case(store).await;
    let attempt = |status| {
        let mut c = case.clone();
        c.status = status;
        let mut commit = Commit::new(case.id.clone());
        commit.case = Some(CaseWrite::Update(c));
        store.commit(commit)
    };
    let (a, b) = tokio::join!(attempt(CaseStatus::Resolved), attempt(CaseStatus::Escalated));
    let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "exactly one of two updates from the same version wins: {a:?} {b:?}");
    assert_eq!(store.get_case(&case.id).await.unwrap().unwrap().version, 2);
}

async fn invalid_commits_are_refused<S: Store>(store: &S) {
    let case = create_case(store).await;
    assert!(store.commit(Commit::new(case.id.clone())).await.is_err(), "empty commit");
    let mut mismatched = Commit::new(case.id.clone());
    mismatched.records.push(RecordWrite::Create(Record::Event(TimelineEvent {
        id: "OUT#1".into(),
        at: Utc::now(),
        kind: "x".into(),
        detail: String::new(),
    })));
    assert!(store.commit(mismatched).await.is_err(), "key of the wrong kind");
}

/// A mail every mailer must deliver intact.
pub fn conformance_mail(to: &str) -> OutgoingMail {
    let message_id = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let to = vec![to.to_string()];
    let raw = compose(&Composition {
        from_address: "support@example.com",
        from_name: Some("Example Support"),
        reply_to: None,
        to: &to,
        subject: "Re: Your refund [CB-0000000000]",
        body: "Hello,\n\nWhat was the amount?\n\n- order 1234\n- paid by card",
        message_id: &message_id,
        in_reply_to: Some("m1@customer.test"),
        references: &["m1@customer.test".to_string()],
        date: Utc::now(),
    })
    .unwrap_or_default();
    OutgoingMail {
        from: "support@example.com".into(),
        to,
        message_id,
        raw,
    }
}

/// Sends a mail through `mailer`, reads it back with `read_back`, and checks
/// what every mailer must keep: sender, recipient, subject and text body.
pub async fn run_mail_conformance<M, F, Fut>(mailer: &M, read_back: F)
where
    M: MailSender,
    F: Fn(SendReceipt) -> Fut,
    Fut: Future<Output = Vec<u8>>,
{
    let mail = conformance_mail("ann@customer.test");
    let first = mailer.send(&mail).await.expect("send");
    let second = mailer.send(&conformance_mail("bob@customer.test")).await.expect("second send");
    assert_ne!(
        first.provider_message_id, second.provider_message_id,
        "each send gets its own provider id"
    );
    let raw = read_back(first).await;
    let parsed = mail_parser::MessageParser::default().parse(&raw).expect("sent mail parses");
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .map(str::to_string);
    assert_eq!(from.as_deref(), Some("support@example.com"));
    let to: Vec<String> = parsed
        .to()
        .map(|a| a.iter().filter_map(|x| x.address.as_deref().map(str::to_string)).collect())
        .unwrap_or_default();
    assert_eq!(to, vec!["ann@customer.test".to_string()]);
    assert_eq!(parsed.subject(), Some("Re: Your refund [CB-0000000000]"));
    let body = parsed.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    assert!(
        body.contains("What was the amount?") && body.contains("- order 1234"),
        "body kept: {body:?}"
    );
}
