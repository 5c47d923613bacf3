//! The store port: cases and their records, written in atomic commits.
//!
//! One commit = one case write (create, or update checked against the case's
//! version) plus records created (failing if they exist: that is how steps
//! claim work exactly once) or replaced, plus Message-ID index entries (which
//! dedupe inbound mail). Either all of it is written or none.

pub mod dynamo;
pub mod sqlite;

use std::future::Future;

use thiserror::Error;

use crate::ids::CaseId;
use crate::model::{Case, Record, RecordKind, RejectedMail};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(String),
    #[error("commit is not valid: {0}")]
    InvalidCommit(String),
    #[error("request out of range: {0}")]
    OutOfRange(String),
}

/// The longest period [`Store::daily_counts`] reads in one call.
pub const MAX_COUNTER_DAYS: i64 = 400;

/// Refuses a counter period that is reversed or longer than [`MAX_COUNTER_DAYS`].
pub fn check_counter_period(since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<(), StoreError> {
    let days = (until - since).num_days();
    if days < 0 {
        return Err(StoreError::OutOfRange(format!("{since} is after {until}")));
    }
    if days >= MAX_COUNTER_DAYS {
        return Err(StoreError::OutOfRange(format!("{} days, over {MAX_COUNTER_DAYS}", days + 1)));
    }
    Ok(())
}

#[derive(Debug, Error)]
pub enum CommitError {
    /// The case changed since it was read: re-read and decide again.
    #[error("case {0} was changed by someone else")]
    VersionConflict(CaseId),
    /// A case, record or index entry that must be new already exists: the
    /// work was done (or, for a case, the generated id was taken).
    #[error("{0} already exists")]
    AlreadyExists(Existing),
    /// A conditional replace found the record in another state.
    #[error("{0} is not in the expected state")]
    StateMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a create-only write found already there. Typed, so a step tells
/// "this mail was stored before" from "this case id is taken" without
/// reading error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Case(CaseId),
    /// `case/key` of a record.
    Record(String),
    /// A Message-ID (or delivery / SES id) index entry.
    Message(String),
}

impl std::fmt::Display for Existing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Existing::Case(id) => write!(f, "case {id}"),
            Existing::Record(key) => f.write_str(key),
            Existing::Message(id) => write!(f, "message {id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum CaseWrite {
    /// Write a new case; fails with AlreadyExists if the id is taken. Stored with version 1.
    Create(Case),
    /// Replace the case if its stored version is still `case.version`; stored with version + 1.
    Update(Case),
}

impl CaseWrite {
    pub fn case(&self) -> &Case {
        match self {
            CaseWrite::Create(c) | CaseWrite::Update(c) => c,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RecordWrite {
    /// Must not exist yet.
    Create(Record),
    /// Overwrites whatever is there.
    Replace(Record),
    /// Overwrites only if the stored record's status is `expected_status`.
    ReplaceIfStatus { record: Record, expected_status: &'static str },
}

impl RecordWrite {
    pub fn record(&self) -> &Record {
        match self {
            RecordWrite::Create(r) | RecordWrite::Replace(r) | RecordWrite::ReplaceIfStatus { record: r, .. } => r,
        }
    }
}

/// A Message-ID index entry: maps a Message-ID (or SES id) to its case, and
/// being create-only, makes a second delivery of the same mail a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIndexEntry {
    pub message_id: String,
    pub case_id: CaseId,
    /// Create-only (dedupe) or overwrite (an extra alias such as the SES id).
    pub must_be_new: bool,
}

/// One fact of a case's life (a resolution, an escalation, a reviewed
/// draft…) added to the day's counter of its intent, in the same commit as
/// the change that made it true, so it is counted exactly once. The
/// counters answer the report on a store where reading every case is a
/// table scan (DynamoDB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub day: chrono::NaiveDate,
    /// The case's intent, or [`crate::report::NONE`].
    pub intent: String,
    /// The case's agent: a dimension of the metric line, not of the stored counter.
    pub agent: Option<String>,
    pub fact: crate::metrics::Fact,
}

/// A day's counter of one fact for one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    pub day: chrono::NaiveDate,
    pub intent: String,
    pub fact: crate::metrics::Fact,
    pub value: u64,
}

#[derive(Debug, Clone)]
pub struct Commit {
    pub case_id: CaseId,
    pub case: Option<CaseWrite>,
    pub records: Vec<RecordWrite>,
    pub message_index: Vec<MessageIndexEntry>,
    /// Counters to add to; written only with something else.
    pub counts: Vec<Count>,
}

/// DynamoDB transactions hold at most 100 items.
pub const MAX_COMMIT_ITEMS: usize = 100;

impl Commit {
    pub fn new(case_id: CaseId) -> Commit {
        Commit {
            case_id,
            case: None,
            records: Vec::new(),
            message_index: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// The distinct (day, intent) counters this commit adds to, with the
    /// increments of each: one item per counter in a transaction.
    pub fn grouped_counts(&self) -> std::collections::BTreeMap<(chrono::NaiveDate, &str), Vec<(crate::metrics::Fact, u64)>> {
        let mut groups: std::collections::BTreeMap<(chrono::NaiveDate, &str), Vec<(crate::metrics::Fact, u64)>> = Default::default();
        for count in &self.counts {
            let facts = groups.entry((count.day, count.intent.as_str())).or_default();
            match facts.iter_mut().find(|(f, _)| *f == count.fact) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => facts.push((count.fact, 1)),
            }
        }
        groups
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let items = usize::from(self.case.is_some()) + self.records.len() + self.message_index.len();
        if items == 0 {
            return Err(StoreError::InvalidCommit("empty commit".into()));
        }
        let items = items + self.grouped_counts().len();
        if items > MAX_COMMIT_ITEMS {
            return Err(StoreError::InvalidCommit(format!("{items} items, over {MAX_COMMIT_ITEMS}")));
        }
        if let Some(write) = &self.case {
            if write.case().id != self.case_id {
                return Err(StoreError::InvalidCommit("case write for another case".into()));
            }
        }
        let mut keys = std::collections::HashSet::new();
        for write in &self.records {
            let key = write.record().key();
            if RecordKind::of_key(key) != Some(write.record().kind()) {
                return Err(StoreError::InvalidCommit(format!("record key {key:?} does not match its kind")));
            }
            if !keys.insert(key.to_string()) {
                return Err(StoreError::InvalidCommit(format!("record {key:?} written twice")));
            }
        }
        Ok(())
    }
}

/// The store port. Both adapters pass the same conformance suite
/// (`crate::testing::store_conformance`).
pub trait Store: Send + Sync {
    fn get_case(&self, id: &CaseId) -> impl Future<Output = Result<Option<Case>, StoreError>> + Send;

    /// The case a Message-ID (or `ses:` key) was indexed for.
    fn case_for_message_id(&self, message_id: &str) -> impl Future<Output = Result<Option<CaseId>, StoreError>> + Send;

    fn get_record(&self, case_id: &CaseId, key: &str) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// All records of one kind for a case, in key order.
    fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// Writes the whole commit or nothing.
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// Keeps a mail that belongs to no case, with its reason. Idempotent per key.
    fn record_rejected(&self, rejected: RejectedMail) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn list_rejected(&self, limit: usize) -> impl Future<Output = Result<Vec<RejectedMail>, StoreError>> + Send;

    /// Records whose due time is at or before `before`, earliest first (an
    /// index query, never a scan).
    fn list_due(
        &self,
        kind: RecordKind,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueItem>, StoreError>> + Send;

    /// What waits for a representative: pending drafts, or escalated cases;
    /// oldest first (an index query, never a scan).
    fn list_queue(&self, queue: Queue, limit: usize) -> impl Future<Output = Result<Vec<QueueItem>, StoreError>> + Send;

    /// The daily counters of days `since ..= until`, every intent and fact
    /// with a count (key lookups per day, never a scan). A period over
    /// [`MAX_COUNTER_DAYS`] or reversed is refused ([`StoreError::OutOfRange`]).
    fn daily_counts(
        &self,
        since: chrono::NaiveDate,
        until: chrono::NaiveDate,
    ) -> impl Future<Output = Result<Vec<DailyCount>, StoreError>> + Send;

    /// Ids of all cases, for operators' tools. Not for request paths.
    fn list_case_ids(&self, limit: usize) -> impl Future<Output = Result<Vec<CaseId>, StoreError>> + Send;

    /// Whether `list_case_ids` is a local read cheap enough for a request
    /// path (the embedded store) rather than a table scan (DynamoDB).
    fn lists_cases_cheaply(&self) -> bool {
        false
    }

    /// Every case `select` keeps, with its records of `kinds` (all in one
    /// key order), turned into `T` by `map`; in case id order, at most `limit`
    /// of them. For the report and operators' tools, like `list_case_ids`:
    /// on DynamoDB it scans. This default reads case by case; a store that
    /// can read everything in one pass (SQLite) overrides it, and the
    /// conformance suite holds both to the same answer.
    fn scan_cases<T, K, M>(
        &self,
        kinds: &[RecordKind],
        limit: usize,
        select: K,
        mut map: M,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send
    where
        T: Send,
        K: Fn(&Case) -> bool + Send,
        M: FnMut(&Case, &[Record]) -> T + Send,
    {
        let kinds = kinds.to_vec();
        async move {
            let mut out = Vec::new();
            for id in self.list_case_ids(usize::MAX).await? {
                if out.len() >= limit {
                    break;
                }
                let Some(case) = self.get_case(&id).await? else {
                    continue;
                };
                if !select(&case) {
                    continue;
                }
                let mut records = Vec::new();
                for kind in &kinds {
                    records.extend(self.list_records(&id, *kind).await?);
                }
                records.sort_by(|a, b| a.key().cmp(b.key()));
                out.push(map(&case, &records));
            }
            Ok(out)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Drafts waiting for review.
    Drafts,
    /// Cases escalated to, or taken over by, a representative.
    Escalated,
}

impl Queue {
    pub fn name(self) -> &'static str {
        match self {
            Queue::Drafts => "drafts",
            Queue::Escalated => "escalated",
        }
    }
}

/// One entry of a representative queue: the case, and the draft key for drafts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub case_id: CaseId,
    /// `CASE` for an escalated case, the draft's key for a draft.
    pub key: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Which queue a case is in, if any, and since when.
pub fn case_queue(case: &crate::model::Case) -> Option<(Queue, chrono::DateTime<chrono::Utc>)> {
    (case.status == crate::model::CaseStatus::Escalated)
        .then(|| (Queue::Escalated, case.escalation.as_ref().map(|e| e.at).unwrap_or(case.updated_at)))
}

/// Which queue a record is in, if any, and since when.
pub fn record_queue(record: &Record) -> Option<(Queue, chrono::DateTime<chrono::Utc>)> {
    match record {
        Record::Draft(d) if d.status == crate::model::DraftStatus::PendingReview => Some((Queue::Drafts, d.created_at)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    pub case_id: CaseId,
    pub key: String,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// Sortable text form of a due time (fixed width, UTC).
pub fn due_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Key of a Message-ID index entry; hashed so hostile ids cannot blow key limits.
pub fn message_index_key(message_id: &str) -> String {
    format!("MSGID#{}", crate::ids::sha256_hex(message_id.as_bytes()))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The fact a stored counter name stands for.
pub(crate) fn fact_named(name: &str) -> Option<crate::metrics::Fact> {
    crate::metrics::Fact::ALL.into_iter().find(|f| f.metric_name() == name)
}
