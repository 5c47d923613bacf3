//! The store and mailer the CLI works on: the embedded store with a local
//! outbox, or DynamoDB with SES v2 (`--store dynamodb:TABLE`), chosen at run time.

use std::path::PathBuf;

use casebridge::ids::CaseId;
use casebridge::mail::outbox::OutboxMailer;
use casebridge::mail::ses::SesMailer;
use casebridge::mail::{MailError, MailSender, OutgoingMail, SendReceipt};
use casebridge::model::{Case, Record, RecordKind, RejectedMail};
use casebridge::store::dynamo::DynamoStore;
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::{Commit, CommitError, DailyCount, DueItem, Queue, QueueItem, Store, StoreError};

use crate::local::CliError;

pub enum AnyStore {
    Sqlite(SqliteStore),
    Dynamo(DynamoStore),
}

pub enum AnyMailer {
    Outbox(OutboxMailer),
    Ses(SesMailer),
}

/// `sqlite:PATH` (default `sqlite:.casebridge/cases.db`) or `dynamodb:TABLE`.
pub async fn open(store: &str, outbox: &std::path::Path) -> Result<(AnyStore, AnyMailer), CliError> {
    if let Some(table) = store.strip_prefix("dynamodb:") {
        let aws = casebridge::aws::sdk_config().await;
        let store = DynamoStore::new(casebridge::aws::dynamodb(&aws), table);
        let mailer = SesMailer::new(casebridge::aws::sesv2(&aws), std::env::var("SES_CONFIGURATION_SET").ok());
        return Ok((AnyStore::Dynamo(store), AnyMailer::Ses(mailer)));
    }
    let path = PathBuf::from(
        store
            .strip_prefix("sqlite:")
            .ok_or_else(|| format!("--store {store:?}: use sqlite:PATH or dynamodb:TABLE"))?,
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok((
        AnyStore::Sqlite(SqliteStore::open(&path)?),
        AnyMailer::Outbox(OutboxMailer::new(outbox)?),
    ))
}

impl Store for AnyStore {
    async fn get_case(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.get_case(id).await,
            AnyStore::Dynamo(s) => s.get_case(id).await,
        }
    }
    async fn case_for_message_id(&self, message_id: &str) -> Result<Option<CaseId>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.case_for_message_id(message_id).await,
            AnyStore::Dynamo(s) => s.case_for_message_id(message_id).await,
        }
    }
    async fn get_record(&self, case_id: &CaseId, key: &str) -> Result<Option<Record>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.get_record(case_id, key).await,
            AnyStore::Dynamo(s) => s.get_record(case_id, key).await,
        }
    }
    async fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list_records(case_id, kind).await,
            AnyStore::Dynamo(s) => s.list_records(case_id, kind).await,
        }
    }
    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        match self {
            AnyStore::Sqlite(s) => s.commit(commit).await,
            AnyStore::Dynamo(s) => s.commit(commit).await,
        }
    }
    async fn record_rejected(&self, rejected: RejectedMail) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.record_rejected(rejected).await,
            AnyStore::Dynamo(s) => s.record_rejected(rejected).await,
        }
    }
    async fn list_rejected(&self, limit: usize) -> Result<Vec<RejectedMail>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list_rejected(limit).await,
            AnyStore::Dynamo(s) => s.list_rejected(limit).await,
        }
    }
    async fn list_due(&self, kind: RecordKind, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<DueItem>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list_due(kind, before, limit).await,
            AnyStore::Dynamo(s) => s.list_due(kind, before, limit).await,
        }
    }
    async fn list_queue(&self, queue: Queue, limit: usize) -> Result<Vec<QueueItem>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list_queue(queue, limit).await,
            AnyStore::Dynamo(s) => s.list_queue(queue, limit).await,
        }
    }
    async fn daily_counts(&self, since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<Vec<DailyCount>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.daily_counts(since, until).await,
            AnyStore::Dynamo(s) => s.daily_counts(since, until).await,
        }
    }
    async fn list_case_ids(&self, limit: usize) -> Result<Vec<CaseId>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list_case_ids(limit).await,
            AnyStore::Dynamo(s) => s.list_case_ids(limit).await,
        }
    }
    fn lists_cases_cheaply(&self) -> bool {
        match self {
            AnyStore::Sqlite(s) => s.lists_cases_cheaply(),
            AnyStore::Dynamo(s) => s.lists_cases_cheaply(),
        }
    }
    async fn scan_cases<T, K, M>(&self, kinds: &[RecordKind], limit: usize, select: K, map: M) -> Result<Vec<T>, StoreError>
    where
        T: Send,
        K: Fn(&Case) -> bool + Send,
        M: FnMut(&Case, &[Record]) -> T + Send,
    {
        match self {
            AnyStore::Sqlite(s) => s.scan_cases(kinds, limit, select, map).await,
            AnyStore::Dynamo(s) => s.scan_cases(kinds, limit, select, map).await,
        }
    }
}

impl MailSender for AnyMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<SendReceipt, MailError> {
        match self {
            AnyMailer::Outbox(m) => m.send(mail).await,
            AnyMailer::Ses(m) => m.send(mail).await,
        }
    }
}
