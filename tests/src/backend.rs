//! The adapters a behaviour test runs on. Every behaviour suite runs each of
//! its tests on the embedded backend — the SQLite store in a scratch folder,
//! the outbox mailer and raw mail in a folder — so it always tests something,
//! and again on the local stack (DynamoDB, its stream and S3 on moto, SES v2
//! on aws-ses-v2-local) when that is running.
//!
//! The functions are driven the same way on both: each step is fed the
//! stream records the previous step wrote. On the stack they are read from
//! the table's DynamoDB stream; the embedded store has no stream, so
//! [`EmbeddedStore`] writes one from its commits, in the shape Lambda
//! delivers it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use casebridge::ids::CaseId;
use casebridge::mail::outbox::OutboxMailer;
use casebridge::mail::ses::SesMailer;
use casebridge::mail::{MailError, MailSender, OutgoingMail, SendReceipt};
use casebridge::model::{Case, OutboundMail, Record, RecordKind, RejectedMail};
use casebridge::raw_mail::{FolderRawMail, RawMailError, RawMailSource, S3RawMail};
use casebridge::store::dynamo::DynamoStore;
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::{CaseWrite, Commit, CommitError, DailyCount, DueItem, Queue, QueueItem, Store, StoreError};
use serde_json::{json, Value};

use crate::{spawn_ses_proxy, unique, SesFault, SesProxy, Stack, StreamTap, MAIL_PREFIX};

/// One test per backend for each named `async fn(Backend)`: `<name>::embedded`
/// always runs, `<name>::stack` returns early without the local stack (as
/// [`crate::stack`] says). `with(<tokio::test arguments>): name, …` sets the
/// runtime; the default is `flavor = "multi_thread"`.
#[macro_export]
macro_rules! on_every_backend {
    (with $runtime:tt: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test $runtime]
                async fn embedded() {
                    super::$name($crate::Backend::embedded()).await
                }

                #[tokio::test $runtime]
                async fn stack() {
                    if let Some(backend) = $crate::Backend::local_stack().await {
                        super::$name(backend).await
                    }
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $crate::on_every_backend!(with(flavor = "multi_thread"): $($name),+);
    };
}

/// A folder of scratch files, removed when the last backend using it is dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a test's stores, mail and raw mail live. Clones share them (one
/// outbox, one SES server), and every [`Backend::store`] is a fresh store.
#[derive(Clone)]
pub enum Backend {
    /// SQLite, the outbox mailer and a raw-mail folder, in a scratch folder.
    Embedded(Embedded),
    /// moto and aws-ses-v2-local.
    Stack(StackBackend),
}

#[derive(Clone)]
pub struct Embedded {
    scratch: Arc<Scratch>,
    faults: Arc<LocalFaults>,
}

#[derive(Clone)]
pub struct StackBackend {
    pub stack: Arc<Stack>,
    /// Straight to aws-ses-v2-local, or through a fault-injecting proxy.
    ses: aws_sdk_sesv2::Client,
    proxy: Option<Arc<SesProxy>>,
}

impl Backend {
    pub fn embedded() -> Backend {
        let dir = std::env::temp_dir().join(unique("casebridge-test"));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Backend::Embedded(Embedded {
            scratch: Arc::new(Scratch(dir)),
            faults: Arc::default(),
        })
    }

    /// The local stack, or None (test skipped) when it is not running.
    pub async fn local_stack() -> Option<Backend> {
        let stack = crate::stack().await?;
        let ses = stack.ses();
        Some(Backend::Stack(StackBackend {
            stack: Arc::new(stack),
            ses,
            proxy: None,
        }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Stack(_) => "stack",
        }
    }

    /// The local stack, for what only it has (Secrets Manager, table scans).
    pub fn as_stack(&self) -> Option<&Stack> {
        match self {
            Backend::Embedded(_) => None,
            Backend::Stack(b) => Some(&b.stack),
        }
    }

    /// A fresh, empty store: a new SQLite file, or a new table on moto.
    pub async fn store(&self) -> TestStore {
        match self {
            Backend::Embedded(e) => {
                let path = e.scratch.0.join(format!("{}.sqlite", unique("cases")));
                TestStore::Embedded(EmbeddedStore::open(&path))
            }
            Backend::Stack(b) => TestStore::Dynamo(b.stack.table().await),
        }
    }

    /// Starts reading what `store` writes, from its beginning.
    pub async fn tap(&self, store: &TestStore) -> Tap {
        match (self, store) {
            (Backend::Stack(b), TestStore::Dynamo(table)) => Tap::Stream {
                tap: Box::new(b.stack.tap(table).await),
                stack: b.stack.clone(),
            },
            (Backend::Embedded(_), TestStore::Embedded(store)) => Tap::Log {
                store: store.clone(),
                next: 0,
            },
            _ => panic!("a {} tap over a store of another backend", self.name()),
        }
    }

    /// A mailer whose mail [`Backend::sent_to`] reads back.
    pub fn mailer(&self) -> TestMailer {
        match self {
            Backend::Embedded(e) => TestMailer::Outbox {
                outbox: OutboxMailer::new(e.outbox()).expect("outbox folder"),
                faults: e.faults.clone(),
            },
            Backend::Stack(b) => TestMailer::Ses(SesMailer::new(b.ses.clone(), None)),
        }
    }

    /// This backend with every later [`Backend::mailer`] open to injected
    /// send faults: through a proxy in front of aws-ses-v2-local on the stack
    /// (so SES's own error answers are what the mailer sees), in the outbox
    /// mailer itself on the embedded backend.
    pub async fn with_mail_faults(self) -> (Backend, MailFaults) {
        match self {
            Backend::Embedded(e) => {
                let faults = MailFaults::Local(e.faults.clone());
                (Backend::Embedded(e), faults)
            }
            Backend::Stack(mut b) => {
                let proxy = Arc::new(spawn_ses_proxy(&b.stack.ses_url).await);
                b.ses = proxy.client(&b.stack);
                b.proxy = Some(proxy.clone());
                (Backend::Stack(b), MailFaults::Proxy(proxy))
            }
        }
    }

    /// Mail sent to one recipient, oldest first.
    pub async fn sent_to(&self, address: &str) -> Vec<SentMail> {
        match self {
            Backend::Stack(b) => b.stack.ses_sent_to(address).await.iter().map(SentMail::from_ses_local).collect(),
            Backend::Embedded(e) => e
                .outbox_files()
                .into_iter()
                .filter_map(|(name, raw)| SentMail::from_mime(name, &raw))
                .filter(|m| m.to.iter().any(|to| to.contains(address)))
                .collect(),
        }
    }

    /// The MIME the provider holds for a sent mail (by its provider id).
    pub async fn sent_raw(&self, provider_id: &str) -> Vec<u8> {
        match self {
            Backend::Stack(b) => b.stack.ses_eml(provider_id).await,
            Backend::Embedded(e) => std::fs::read(e.outbox().join(provider_id)).unwrap_or_default(),
        }
    }

    /// The Message-ID a customer's copy of `mail` carries, which their reply
    /// points at: SES replaces ours with `<MessageId@region.amazonses.com>`,
    /// the outbox keeps ours.
    pub fn delivered_message_id(&self, mail: &OutboundMail) -> String {
        match self {
            Backend::Stack(_) => format!(
                "{}@email.amazonses.com",
                mail.provider_message_id.as_deref().expect("SES MessageId kept")
            ),
            Backend::Embedded(_) => mail.message_id.clone(),
        }
    }

    /// A fresh place for inbound raw mail: a bucket on moto, or a folder.
    pub async fn mail_drop(&self) -> MailDrop {
        match self {
            Backend::Stack(b) => {
                let (client, bucket, _) = b.stack.bucket().await;
                MailDrop::S3 { client, bucket }
            }
            Backend::Embedded(e) => {
                let dir = e.scratch.0.join(unique("inbound-mail"));
                std::fs::create_dir_all(&dir).expect("raw mail folder");
                MailDrop::Folder(dir)
            }
        }
    }
}

impl Embedded {
    fn outbox(&self) -> PathBuf {
        self.scratch.0.join("outbox")
    }

    /// (file name, content) of every mail the outbox holds, in send order.
    fn outbox_files(&self) -> Vec<(String, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Vec::new();
        };
        let mut files: Vec<(String, Vec<u8>)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                Some((e.file_name().into_string().ok()?, std::fs::read(e.path()).ok()?))
            })
            .filter(|(name, _)| name.ends_with(".eml"))
            .collect();
        files.sort();
        files
    }
}

/// A mail as the provider accepted it.
#[derive(Debug, Clone)]
pub struct SentMail {
    /// The provider's id (SES MessageId, or the outbox file name).
    pub provider_id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

impl SentMail {
    fn from_ses_local(value: &Value) -> SentMail {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        SentMail {
            provider_id: text(&value["messageId"]),
            to: value["destination"]["to"]
                .as_array()
                .map(|to| to.iter().map(text).collect())
                .unwrap_or_default(),
            subject: text(&value["subject"]),
            text: text(&value["body"]["text"]),
        }
    }

    fn from_mime(provider_id: String, raw: &[u8]) -> Option<SentMail> {
        let message = mail_parser::MessageParser::default().parse(raw)?;
        Some(SentMail {
            provider_id,
            to: message
                .to()
                .map(|to| to.iter().filter_map(|a| a.address.as_deref().map(str::to_string)).collect())
                .unwrap_or_default(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: message.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        })
    }

    /// Whether the subject or the text names `what`.
    pub fn mentions(&self, what: &str) -> bool {
        self.subject.contains(what) || self.text.contains(what)
    }
}

/// A send fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFault {
    /// SES's throttling answer (429 TooManyRequestsException).
    Throttled,
    /// SES refusing the mail for good (400 MessageRejected).
    Rejected,
}

impl SendFault {
    fn ses(self) -> (u16, &'static str) {
        match self {
            SendFault::Throttled => (429, "TooManyRequestsException"),
            SendFault::Rejected => (400, "MessageRejected"),
        }
    }

    /// What the SES mailer makes of SES's answer.
    fn error(self) -> MailError {
        let (_, name) = self.ses();
        match self {
            SendFault::Throttled => MailError::Throttled(format!("{name}: injected fault")),
            SendFault::Rejected => MailError::Permanent(format!("{name}: injected fault")),
        }
    }
}

/// Injected send faults of a backend (see [`Backend::with_mail_faults`]).
pub enum MailFaults {
    Proxy(Arc<SesProxy>),
    Local(Arc<LocalFaults>),
}

impl MailFaults {
    /// The next `times` sends that mention `matching` fail with `fault`.
    pub fn fail(&self, matching: &str, fault: SendFault, times: u32) {
        match self {
            MailFaults::Proxy(proxy) => {
                let (status, error_type) = fault.ses();
                proxy.fail(SesFault {
                    matching: matching.to_string(),
                    status,
                    error_type: error_type.into(),
                    remaining: times,
                });
            }
            MailFaults::Local(local) => local.rules.lock().unwrap().push((matching.to_string(), fault, times)),
        }
    }

    /// Sends that mentioned `text`, failed or not.
    pub fn requests_mentioning(&self, text: &str) -> usize {
        match self {
            MailFaults::Proxy(proxy) => proxy.requests_mentioning(text),
            MailFaults::Local(local) => local.seen.lock().unwrap().iter().filter(|s| s.contains(text)).count(),
        }
    }
}

/// Send faults for the outbox mailer, checked before each send.
#[derive(Default)]
pub struct LocalFaults {
    rules: Mutex<Vec<(String, SendFault, u32)>>,
    seen: Mutex<Vec<String>>,
}

impl LocalFaults {
    fn check(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        // What an SES request would carry: sender, recipients and the MIME.
        let text = format!("{} {} {}", mail.from, mail.to.join(" "), String::from_utf8_lossy(&mail.raw));
        let mut rules = self.rules.lock().unwrap();
        let fault = rules
            .iter_mut()
            .find(|(matching, _, remaining)| *remaining > 0 && text.contains(matching.as_str()))
            .map(|(_, fault, remaining)| {
                *remaining -= 1;
                *fault
            });
        self.seen.lock().unwrap().push(text);
        fault.map_or(Ok(()), |f| Err(f.error()))
    }
}

/// The mail port on either backend.
pub enum TestMailer {
    Ses(SesMailer),
    Outbox { outbox: OutboxMailer, faults: Arc<LocalFaults> },
}

impl MailSender for TestMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<SendReceipt, MailError> {
        match self {
            TestMailer::Ses(ses) => ses.send(mail).await,
            TestMailer::Outbox { outbox, faults } => {
                faults.check(mail)?;
                outbox.send(mail).await
            }
        }
    }
}

/// The store port on either backend.
#[derive(Clone)]
pub enum TestStore {
    Dynamo(DynamoStore),
    Embedded(EmbeddedStore),
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            TestStore::Dynamo($store) => $call,
            TestStore::Embedded($store) => $call,
        }
    };
}

impl Store for TestStore {
    async fn get_case(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        delegate!(self, s => s.get_case(id).await)
    }

    async fn case_for_message_id(&self, message_id: &str) -> Result<Option<CaseId>, StoreError> {
        delegate!(self, s => s.case_for_message_id(message_id).await)
    }

    async fn get_record(&self, case_id: &CaseId, key: &str) -> Result<Option<Record>, StoreError> {
        delegate!(self, s => s.get_record(case_id, key).await)
    }

    async fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        delegate!(self, s => s.list_records(case_id, kind).await)
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        delegate!(self, s => s.commit(commit).await)
    }

    async fn record_rejected(&self, rejected: RejectedMail) -> Result<(), StoreError> {
        delegate!(self, s => s.record_rejected(rejected).await)
    }

    async fn list_rejected(&self, limit: usize) -> Result<Vec<RejectedMail>, StoreError> {
        delegate!(self, s => s.list_rejected(limit).await)
    }

    async fn list_due(&self, kind: RecordKind, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<DueItem>, StoreError> {
        delegate!(self, s => s.list_due(kind, before, limit).await)
    }

    async fn list_queue(&self, queue: Queue, limit: usize) -> Result<Vec<QueueItem>, StoreError> {
        delegate!(self, s => s.list_queue(queue, limit).await)
    }

    async fn daily_counts(&self, since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<Vec<DailyCount>, StoreError> {
        delegate!(self, s => s.daily_counts(since, until).await)
    }

    async fn list_case_ids(&self, limit: usize) -> Result<Vec<CaseId>, StoreError> {
        delegate!(self, s => s.list_case_ids(limit).await)
    }

    fn lists_cases_cheaply(&self) -> bool {
        delegate!(self, s => s.lists_cases_cheaply())
    }
    async fn scan_cases<T, K, M>(&self, kinds: &[RecordKind], limit: usize, select: K, map: M) -> Result<Vec<T>, StoreError>
    where
        T: Send,
        K: Fn(&Case) -> bool + Send,
        M: FnMut(&Case, &[casebridge::model::Record]) -> T + Send,
    {
        delegate!(self, s => s.scan_cases(kinds, limit, select, map).await)
    }
}

/// The SQLite store, writing the stream a DynamoDB table with
/// NEW_AND_OLD_IMAGES would: one record per item a commit wrote (INSERT if
/// the item is new, MODIFY if it changed; a put that changes nothing writes
/// no record, as in DynamoDB), with the attributes the DynamoDB adapter puts
/// on the item for stream filters and consumers. Rejected mail lives in no
/// case, triggers nothing and is left out.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<SqliteStore>,
    stream: Arc<tokio::sync::Mutex<EmbeddedStream>>,
}

#[derive(Default)]
struct EmbeddedStream {
    records: Vec<Value>,
    /// The current image of every item written, by (pk, sk).
    items: HashMap<(String, String), Value>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

fn s(text: &str) -> Value {
    json!({ "S": text })
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> EmbeddedStore {
        EmbeddedStore {
            inner: Arc::new(SqliteStore::open(path).expect("open the embedded store")),
            stream: Arc::default(),
        }
    }

    /// Stream records from position `from` on, and the position after them.
    async fn records_from(&self, from: usize) -> (Vec<Value>, usize) {
        let stream = self.stream.lock().await;
        (stream.records.get(from..).unwrap_or_default().to_vec(), stream.records.len())
    }
}

impl EmbeddedStream {
    /// The items a commit wrote, as DynamoDB images.
    fn images(commit: &Commit) -> Vec<Value> {
        let case_id = commit.case_id.as_str();
        let pk = casebridge::store::dynamo::case_pk(&commit.case_id);
        let mut images = Vec::new();
        if let Some(write) = &commit.case {
            let mut case = write.case().clone();
            case.version = match write {
                CaseWrite::Create(_) => 1,
                CaseWrite::Update(_) => case.version + 1,
            };
            images.push(json!({
                "pk": s(&pk), "sk": s(casebridge::store::dynamo::CASE_SK), "record_type": s("Case"),
                "case_id": s(case_id), "version": {"N": case.version.to_string()}, "status": s(case.status.as_str()),
                "doc": s(&serde_json::to_string(&case).expect("case serialises")),
            }));
        }
        for write in &commit.records {
            let record = write.record();
            let mut image = json!({
                "pk": s(&pk), "sk": s(record.key()), "record_type": s(record.kind().type_name()),
                "case_id": s(case_id), "doc": s(&serde_json::to_string(record).expect("record serialises")),
            });
            if let Some(status) = record.status() {
                image["status"] = s(status);
            }
            if let Some(origin) = record.origin() {
                image["origin"] = s(origin);
            }
            images.push(image);
        }
        for entry in &commit.message_index {
            images.push(json!({
                "pk": s(&casebridge::store::message_index_key(&entry.message_id)), "sk": s("MSGID"),
                "record_type": s("MessageIndex"), "case_id": s(entry.case_id.as_str()), "message_id": s(&entry.message_id),
            }));
        }
        images
    }

    fn append(&mut self, commit: &Commit) {
        for image in EmbeddedStream::images(commit) {
            let key = (
                image["pk"]["S"].as_str().unwrap_or_default().to_string(),
                image["sk"]["S"].as_str().unwrap_or_default().to_string(),
            );
            let old = self.items.get(&key).cloned();
            if old.as_ref() == Some(&image) {
                continue;
            }
            let sequence = SEQUENCE.fetch_add(1, Ordering::SeqCst);
            let mut change = json!({
                "ApproximateCreationDateTime": chrono::Utc::now().timestamp(),
                "Keys": {"pk": image["pk"], "sk": image["sk"]},
                "NewImage": image,
                "SequenceNumber": format!("{sequence:021}"),
                "SizeBytes": image.to_string().len(),
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            });
            if let Some(old) = &old {
                change["OldImage"] = old.clone();
            }
            self.records.push(json!({
                "eventID": uuid::Uuid::new_v4().simple().to_string(),
                "eventName": if old.is_some() { "MODIFY" } else { "INSERT" },
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/embedded/stream/0",
                "dynamodb": change,
            }));
            self.items.insert(key, image);
        }
    }
}

impl Store for EmbeddedStore {
    async fn get_case(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        self.inner.get_case(id).await
    }

    async fn case_for_message_id(&self, message_id: &str) -> Result<Option<CaseId>, StoreError> {
        self.inner.case_for_message_id(message_id).await
    }

    async fn get_record(&self, case_id: &CaseId, key: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get_record(case_id, key).await
    }

    async fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        self.inner.list_records(case_id, kind).await
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        // Held across the write, so the stream has the commits in the order
        // they were applied, as a DynamoDB stream shard has them.
        let mut stream = self.stream.lock().await;
        let written = commit.clone();
        self.inner.commit(commit).await?;
        stream.append(&written);
        Ok(())
    }

    async fn record_rejected(&self, rejected: RejectedMail) -> Result<(), StoreError> {
        self.inner.record_rejected(rejected).await
    }

    async fn list_rejected(&self, limit: usize) -> Result<Vec<RejectedMail>, StoreError> {
        self.inner.list_rejected(limit).await
    }

    async fn list_due(&self, kind: RecordKind, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<DueItem>, StoreError> {
        self.inner.list_due(kind, before, limit).await
    }

    async fn list_queue(&self, queue: Queue, limit: usize) -> Result<Vec<QueueItem>, StoreError> {
        self.inner.list_queue(queue, limit).await
    }

    async fn daily_counts(&self, since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<Vec<DailyCount>, StoreError> {
        self.inner.daily_counts(since, until).await
    }

    async fn list_case_ids(&self, limit: usize) -> Result<Vec<CaseId>, StoreError> {
        self.inner.list_case_ids(limit).await
    }

    fn lists_cases_cheaply(&self) -> bool {
        self.inner.lists_cases_cheaply()
    }
    async fn scan_cases<T, K, M>(&self, kinds: &[RecordKind], limit: usize, select: K, map: M) -> Result<Vec<T>, StoreError>
    where
        T: Send,
        K: Fn(&Case) -> bool + Send,
        M: FnMut(&Case, &[casebridge::model::Record]) -> T + Send,
    {
        self.inner.scan_cases(kinds, limit, select, map).await
    }
}

/// Reads new stream records of a store and hands them over as Lambda does.
pub enum Tap {
    Stream { tap: Box<StreamTap>, stack: Arc<Stack> },
    Log { store: EmbeddedStore, next: usize },
}

impl Tap {
    pub async fn next_event(&mut self) -> StreamEvent {
        match self {
            Tap::Stream { tap, stack } => tap.next_event(stack).await,
            Tap::Log { store, next } => {
                let (records, after) = store.records_from(*next).await;
                *next = after;
                serde_json::from_value(json!({ "Records": records })).expect("stream records decode as a Lambda DynamoDB event")
            }
        }
    }
}

/// Where inbound raw mail is put for the inbound function: where the SES
/// receipt rule's S3 action puts it, or a folder (`FolderRawMail`, as the
/// CLI reads it).
pub enum MailDrop {
    S3 { client: aws_sdk_s3::Client, bucket: String },
    Folder(PathBuf),
}

impl MailDrop {
    /// Stores raw MIME under `MAIL_PREFIX` + a new SES message id; returns the id.
    pub async fn deliver(&self, raw: &[u8]) -> String {
        match self {
            MailDrop::S3 { client, bucket } => crate::deliver_to_s3(client, bucket, raw).await,
            MailDrop::Folder(dir) => {
                let ses_id = unique("ses").replace('-', "");
                let path = dir.join(format!("{MAIL_PREFIX}{ses_id}"));
                std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("raw mail folder");
                std::fs::write(&path, raw).expect("write raw mail");
                ses_id
            }
        }
    }

    /// The raw-mail source the inbound function reads this drop with.
    pub fn source(&self) -> TestRawMail {
        match self {
            MailDrop::S3 { client, bucket } => TestRawMail::S3(S3RawMail::new(client.clone(), bucket.clone())),
            MailDrop::Folder(dir) => TestRawMail::Folder(FolderRawMail::new(dir)),
        }
    }

    /// A source that cannot be reached (a transient fault): a bucket that
    /// does not exist on moto; a folder cannot be made unreachable that way,
    /// so there it is a source that answers as an unreachable one would.
    pub fn unreachable(&self) -> TestRawMail {
        match self {
            MailDrop::S3 { client, .. } => TestRawMail::S3(S3RawMail::new(client.clone(), "no-such-bucket-for-this-test")),
            MailDrop::Folder(dir) => TestRawMail::Unreachable(dir.display().to_string()),
        }
    }

    /// What is stored at a location the source reported (an attachment's), if
    /// it is in this drop.
    pub async fn read(&self, location: &str) -> Option<Vec<u8>> {
        match self {
            MailDrop::S3 { client, bucket } => {
                let key = location.strip_prefix(&format!("s3://{bucket}/"))?;
                let object = client.get_object().bucket(bucket).key(key).send().await.ok()?;
                Some(object.body.collect().await.ok()?.into_bytes().to_vec())
            }
            MailDrop::Folder(dir) => {
                let path = Path::new(location);
                if !path.starts_with(dir) {
                    return None;
                }
                std::fs::read(path).ok()
            }
        }
    }
}

/// The raw-mail port on either backend.
pub enum TestRawMail {
    S3(S3RawMail),
    Folder(FolderRawMail),
    /// Every read and write fails as a storage outage would.
    Unreachable(String),
}

impl RawMailSource for TestRawMail {
    async fn fetch(&self, key: &str, limit: usize) -> Result<Vec<u8>, RawMailError> {
        match self {
            TestRawMail::S3(s3) => s3.fetch(key, limit).await,
            TestRawMail::Folder(folder) => folder.fetch(key, limit).await,
            TestRawMail::Unreachable(_) => Err(RawMailError::Read {
                location: self.location(key),
                reason: "the mail storage is unreachable".into(),
            }),
        }
    }

    fn location(&self, key: &str) -> String {
        match self {
            TestRawMail::S3(s3) => s3.location(key),
            TestRawMail::Folder(folder) => folder.location(key),
            TestRawMail::Unreachable(base) => format!("{base}/{key}"),
        }
    }

    async fn put(&self, key: &str, content: Vec<u8>, content_type: &str) -> Result<String, RawMailError> {
        match self {
            TestRawMail::S3(s3) => s3.put(key, content, content_type).await,
            TestRawMail::Folder(folder) => folder.put(key, content, content_type).await,
            TestRawMail::Unreachable(_) => Err(RawMailError::Write {
                location: self.location(key),
                reason: "the mail storage is unreachable".into(),
            }),
        }
    }
}
