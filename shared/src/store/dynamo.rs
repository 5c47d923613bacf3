//! DynamoDB adapter: one table, single-table design.
//!
//! | item            | pk                 | sk                     | other attributes                       |
//! |-----------------|--------------------|------------------------|----------------------------------------|
//! | case            | `CASE#<id>`        | `CASE`                 | record_type=Case, version, status, doc |
//! | case record     | `CASE#<id>`        | `MSG#…` `WORK#…` `TURN#…` `DRAFT#…` `OUT#…` `FUP#…` | record_type, status, case_id, doc |
//! | timeline lines  | `CASE#<id>`        | `EVT#<version>` (one item per commit) | record_type=Events, case_id, doc (a list) |
//! | Message-ID index| `MSGID#<sha256>`   | `MSGID`                | case_id, message_id                    |
//! | rejected mail   | `REJECTED`         | `<received-at>#<key>`  | doc, `expires_at` (TTL, 90 days)       |
//!
//! Records with a due time (turns in flight or awaiting an async answer) also
//! carry `due_pk` = `DUE#<record type>#<n>` (n = one of [`DUE_SHARDS`] shards, by case) and
//! `due_sk` = `<due time>#<case id>#<key>`, which puts them in the sparse GSI
//! `due`. The sweep queries each shard for `due_sk <= now`: an index query,
//! never a scan; a record leaves the index when it is rewritten without a due time.
//!
//! `doc` holds the serde JSON of the case or record; `record_type` and
//! `status` are top-level so stream filters (WorkItem INSERT → agent
//! function, Turn with status `answered` → outcome function) and conditional
//! writes can use them. A commit is one TransactWriteItems call, except a
//! commit of one item, which is one conditional PutItem (as atomic, half
//! the write units). Tables written before timeline lines were packed hold
//! one `EVT#<version>#<n>` item per line (`record_type=Event`); both shapes
//! are read, so such a table needs no migration.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType, StreamSpecification,
    StreamViewType, TransactWriteItem,
};
use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
use aws_sdk_dynamodb::Client;

use super::{case_queue, due_text, record_queue, DueItem, Queue, QueueItem};
use super::{decode, encode, message_index_key, CaseWrite, Commit, CommitError, DailyCount, RecordWrite, Store, StoreError};
use crate::ids::CaseId;
use crate::model::{Case, Record, RecordKind, RejectedMail};

pub const CASE_SK: &str = "CASE";
const INDEX_SK: &str = "MSGID";
const REJECTED_PK: &str = "REJECTED";
/// The attribute the table's TTL reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Days a rejected-mail record is kept; matches the mail bucket's expiry.
pub const REJECTED_RETENTION_DAYS: i64 = 90;
pub const DUE_INDEX: &str = "due";
/// Sparse GSI of what waits for a representative (`queue_pk` = `QUEUE#drafts` or `QUEUE#escalated`).
pub const QUEUE_INDEX: &str = "queue";
/// Due items are spread over a few partitions so one hot key never throttles writes.
pub const DUE_SHARDS: u32 = 4;

fn due_shard(case: &CaseId) -> u32 {
    case.as_str()
        .bytes()
        .fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b)))
        % DUE_SHARDS
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn sdk_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

pub fn case_pk(id: &CaseId) -> String {
    format!("CASE#{id}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn string_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item has no string attribute {name}")))
}

/// `record_type` of the item that holds all timeline lines of one commit,
/// under the sort key `EVT#<case version>`; its `doc` is the JSON list of
/// the events (each keeps its own `EVT#<version>#<n>` id). Tables written
/// before lines were packed hold one item per line (`record_type = Event`);
/// both read the same, so no migration is needed.
pub const EVENTS_TYPE: &str = "Events";

/// Daily counters: item `STATS#<day>#<shard>` / `INTENT#<intent>`, one
/// number attribute per fact, added to (`ADD`) in the transaction of the
/// change that made the fact true. The shard (the case's due shard) spreads
/// a busy day's writes over [`DUE_SHARDS`] partitions; a day is read with
/// one query per shard.
pub const STATS_PREFIX: &str = "STATS#";
const STATS_TYPE: &str = "Stats";

fn stats_pk(day: chrono::NaiveDate, shard: u32) -> String {
    format!("{STATS_PREFIX}{day}#{shard}")
}

/// `EVT#<version>#<n>` → `EVT#<version>`.
fn packed_events_key(event_key: &str) -> String {
    match event_key.rsplit_once('#') {
        Some((head, n)) if head.len() > RecordKind::Event.prefix().len() && n.bytes().all(|b| b.is_ascii_digit()) => head.to_string(),
        _ => event_key.to_string(),
    }
}

/// The records an item holds: one, or the packed lines of a commit.
fn records_of(item: &HashMap<String, AttributeValue>) -> Result<Vec<Record>, StoreError> {
    let doc = string_attr(item, "doc")?;
    if item.get("record_type").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(EVENTS_TYPE) {
        decode(doc)
    } else {
        Ok(vec![decode(doc)?])
    }
}

/// What a failed condition on the i-th item of a commit means.
enum OnConflict {
    Version(CaseId),
    Exists(super::Existing),
    State(String),
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table as the SAM template declares it (for local runs and tests).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(backend)
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("due_pk")?)
            .attribute_definitions(attr("due_sk")?)
            .attribute_definitions(attr("queue_pk")?)
            .attribute_definitions(attr("queue_sk")?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(QUEUE_INDEX)
                    .key_schema(key("queue_pk", KeyType::Hash)?)
                    .key_schema(key("queue_sk", KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build()
                    .map_err(backend)?,
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(DUE_INDEX)
                    .key_schema(key("due_pk", KeyType::Hash)?)
                    .key_schema(key("due_sk", KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build()
                    .map_err(backend)?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    fn put(&self, item: HashMap<String, AttributeValue>) -> aws_sdk_dynamodb::types::builders::PutBuilder {
        Put::builder().table_name(&self.table).set_item(Some(item))
    }

    fn build_transaction(&self, commit: &Commit) -> Result<(Vec<TransactWriteItem>, Vec<OnConflict>), StoreError> {
        let pk = case_pk(&commit.case_id);
        let mut items = Vec::new();
        let mut conflicts = Vec::new();

        if let Some(write) = &commit.case {
            let mut case = write.case().clone();
            let (put, conflict) = match write {
                CaseWrite::Create(_) => {
                    case.version = 1;
                    (
                        self.put(self.case_item(&case)?).condition_expression("attribute_not_exists(pk)"),
                        OnConflict::Exists(super::Existing::Case(case.id.clone())),
                    )
                }
                CaseWrite::Update(_) => {
                    let expected = case.version;
                    case.version = expected + 1;
                    (
                        self.put(self.case_item(&case)?)
                            .condition_expression("#v = :expected")
                            .expression_attribute_names("#v", "version")
                            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string())),
                        OnConflict::Version(case.id.clone()),
                    )
                }
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(backend)?).build());
            conflicts.push(conflict);
        }

        // The timeline lines of one commit share one item (see `EVENTS_TYPE`).
        let (events, records): (Vec<&RecordWrite>, Vec<&RecordWrite>) = commit
            .records
            .iter()
            .partition(|w| matches!(w, RecordWrite::Create(Record::Event(_))));
        let mut by_version: std::collections::BTreeMap<String, Vec<&Record>> = std::collections::BTreeMap::new();
        for write in events {
            by_version
                .entry(packed_events_key(write.record().key()))
                .or_default()
                .push(write.record());
        }
        for (key, packed) in by_version {
            let mut item = HashMap::new();
            item.insert("pk".to_string(), s(&pk));
            item.insert("sk".to_string(), s(&key));
            item.insert("record_type".to_string(), s(EVENTS_TYPE));
            item.insert("case_id".to_string(), s(commit.case_id.as_str()));
            item.insert("doc".to_string(), s(encode(&packed)?));
            conflicts.push(OnConflict::Exists(super::Existing::Record(format!("{}/{key}", commit.case_id))));
            let put = self.put(item).condition_expression("attribute_not_exists(pk)");
            items.push(TransactWriteItem::builder().put(put.build().map_err(backend)?).build());
        }

        for write in records {
            let record = write.record();
            let mut item = HashMap::new();
            item.insert("pk".to_string(), s(&pk));
            item.insert("sk".to_string(), s(record.key()));
            item.insert("record_type".to_string(), s(record.kind().type_name()));
            item.insert("case_id".to_string(), s(commit.case_id.as_str()));
            item.insert("doc".to_string(), s(encode(record)?));
            if let Some(status) = record.status() {
                item.insert("status".to_string(), s(status));
            }
            // Lets a stream filter pick out the queue notices written by the inbound step.
            if let Some(origin) = record.origin() {
                item.insert("origin".to_string(), s(origin));
            }
            if let Some((queue, since)) = record_queue(record) {
                item.insert("queue_pk".to_string(), s(format!("QUEUE#{}", queue.name())));
                item.insert(
                    "queue_sk".to_string(),
                    s(format!("{}#{}#{}", due_text(since), commit.case_id, record.key())),
                );
            }
            if let Some(due) = record.due_at() {
                item.insert(
                    "due_pk".to_string(),
                    s(format!("DUE#{}#{}", record.kind().type_name(), due_shard(&commit.case_id))),
                );
                item.insert(
                    "due_sk".to_string(),
                    s(format!("{}#{}#{}", due_text(due), commit.case_id, record.key())),
                );
            }
            let name = format!("{}/{}", commit.case_id, record.key());
            let put = match write {
                RecordWrite::Create(_) => {
                    conflicts.push(OnConflict::Exists(super::Existing::Record(name)));
                    self.put(item).condition_expression("attribute_not_exists(pk)")
                }
                RecordWrite::Replace(_) => {
                    conflicts.push(OnConflict::State(name));
                    self.put(item)
                }
                RecordWrite::ReplaceIfStatus { expected_status, .. } => {
                    conflicts.push(OnConflict::State(name));
                    self.put(item)
                        .condition_expression("#s = :expected")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(":expected", s(*expected_status))
                }
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(backend)?).build());
        }

        for entry in &commit.message_index {
            let mut item = HashMap::new();
            item.insert("pk".to_string(), s(message_index_key(&entry.message_id)));
            item.insert("sk".to_string(), s(INDEX_SK));
            item.insert("record_type".to_string(), s("MessageIndex"));
            item.insert("case_id".to_string(), s(entry.case_id.as_str()));
            item.insert("message_id".to_string(), s(&entry.message_id));
            let mut put = self.put(item);
            if entry.must_be_new {
                put = put.condition_expression("attribute_not_exists(pk)");
            }
            conflicts.push(OnConflict::Exists(super::Existing::Message(entry.message_id.clone())));
            items.push(TransactWriteItem::builder().put(put.build().map_err(backend)?).build());
        }

        // No condition: the counters ride on the transaction's other items,
        // whose guards make the change (and so the count) happen once.
        let shard = due_shard(&commit.case_id);
        for ((day, intent), facts) in commit.grouped_counts() {
            let mut update = aws_sdk_dynamodb::types::Update::builder()
                .table_name(&self.table)
                .key("pk", s(stats_pk(day, shard)))
                .key("sk", s(format!("INTENT#{intent}")))
                .expression_attribute_names("#rt", "record_type")
                .expression_attribute_names("#intent", "intent")
                .expression_attribute_values(":rt", s(STATS_TYPE))
                .expression_attribute_values(":intent", s(intent));
            let mut adds = Vec::new();
            for (i, (fact, n)) in facts.iter().enumerate() {
                update = update
                    .expression_attribute_names(format!("#m{i}"), fact.metric_name())
                    .expression_attribute_values(format!(":n{i}"), AttributeValue::N(n.to_string()));
                adds.push(format!("#m{i} :n{i}"));
            }
            update = update.update_expression(format!("SET #rt = :rt, #intent = :intent ADD {}", adds.join(", ")));
            conflicts.push(OnConflict::State(format!("counter {day}/{intent}")));
            items.push(TransactWriteItem::builder().update(update.build().map_err(backend)?).build());
        }
        Ok((items, conflicts))
    }

    /// One conditional PutItem, its failed condition mapped like a transaction's.
    async fn put_one(&self, put: Put, conflict: OnConflict) -> Result<(), CommitError> {
        let mut request = self.client.put_item().table_name(put.table_name).set_item(Some(put.item));
        request = request
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                if let Some(PutItemError::ConditionalCheckFailedException(_)) = err.as_service_error() {
                    return Err(match conflict {
                        OnConflict::Version(id) => CommitError::VersionConflict(id),
                        OnConflict::Exists(what) => CommitError::AlreadyExists(what),
                        OnConflict::State(what) => CommitError::StateMismatch(what),
                    });
                }
                Err(CommitError::Store(sdk_error(err)))
            }
        }
    }

    fn case_item(&self, case: &Case) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item = HashMap::new();
        item.insert("pk".to_string(), s(case_pk(&case.id)));
        item.insert("sk".to_string(), s(CASE_SK));
        item.insert("record_type".to_string(), s("Case"));
        item.insert("case_id".to_string(), s(case.id.as_str()));
        item.insert("version".to_string(), AttributeValue::N(case.version.to_string()));
        item.insert("status".to_string(), s(case.status.as_str()));
        item.insert("doc".to_string(), s(encode(case)?));
        if let Some((queue, since)) = case_queue(case) {
            item.insert("queue_pk".to_string(), s(format!("QUEUE#{}", queue.name())));
            item.insert("queue_sk".to_string(), s(format!("{}#{}#{}", due_text(since), case.id, CASE_SK)));
        }
        Ok(item)
    }

    async fn get_doc(&self, pk: String, sk: String) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.item)
    }

    /// Runs a query to the end, page by page.
    async fn query_all(
        &self,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = request.clone().set_exclusive_start_key(start).send().await.map_err(sdk_error)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

impl Store for DynamoStore {
    async fn get_case(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        match self.get_doc(case_pk(id), CASE_SK.into()).await? {
            Some(item) => Ok(Some(decode(string_attr(&item, "doc")?)?)),
            None => Ok(None),
        }
    }

    async fn case_for_message_id(&self, message_id: &str) -> Result<Option<CaseId>, StoreError> {
        match self.get_doc(message_index_key(message_id), INDEX_SK.into()).await? {
            Some(item) => {
                let id = string_attr(&item, "case_id")?;
                CaseId::parse(id)
                    .map(Some)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad case id {id:?}")))
            }
            None => Ok(None),
        }
    }

    async fn get_record(&self, case_id: &CaseId, key: &str) -> Result<Option<Record>, StoreError> {
        if RecordKind::of_key(key) == Some(RecordKind::Event) {
            if let Some(item) = self.get_doc(case_pk(case_id), packed_events_key(key)).await? {
                let found = records_of(&item)?.into_iter().find(|r| r.key() == key);
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        match self.get_doc(case_pk(case_id), key.to_string()).await? {
            Some(item) => Ok(Some(decode(string_attr(&item, "doc")?)?)),
            None => Ok(None),
        }
    }

    async fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(case_pk(case_id)))
            .expression_attribute_values(":prefix", s(kind.prefix()))
            .consistent_read(true);
        let mut records = Vec::new();
        for item in self.query_all(request, usize::MAX).await? {
            records.extend(records_of(&item)?);
        }
        // Packed lines come in item order; the port promises key order.
        records.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(records)
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        commit.validate()?;
        let (mut items, mut conflicts) = self.build_transaction(&commit)?;
        // One item needs no transaction: a conditional PutItem is as atomic
        // and costs half the write units.
        if items.len() == 1 && items[0].put.is_some() {
            if let (Some(put), Some(conflict)) = (items.pop().and_then(|i| i.put), conflicts.pop()) {
                return self.put_one(put, conflict).await;
            }
            return Err(CommitError::Store(StoreError::Backend("a one-item commit without its put".into())));
        }
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let service = err.as_service_error();
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = service {
                    for (i, reason) in cancelled.cancellation_reasons().iter().enumerate() {
                        if reason.code() == Some("ConditionalCheckFailed") {
                            return Err(match conflicts.into_iter().nth(i) {
                                Some(OnConflict::Version(id)) => CommitError::VersionConflict(id),
                                Some(OnConflict::Exists(what)) => CommitError::AlreadyExists(what),
                                Some(OnConflict::State(what)) => CommitError::StateMismatch(what),
                                None => CommitError::Store(StoreError::Backend("condition failed on unknown item".into())),
                            });
                        }
                    }
                }
                Err(CommitError::Store(sdk_error(err)))
            }
        }
    }

    async fn record_rejected(&self, rejected: RejectedMail) -> Result<(), StoreError> {
        let mut item = HashMap::new();
        item.insert("pk".to_string(), s(REJECTED_PK));
        item.insert(
            "sk".to_string(),
            s(format!("{}#{}", rejected.received_at.to_rfc3339(), rejected.key)),
        );
        item.insert("record_type".to_string(), s("Rejected"));
        // Kept as long as the raw mail in S3 (the bucket's lifecycle rule), then the table's TTL removes it.
        let expires_at = rejected.received_at + chrono::Duration::days(REJECTED_RETENTION_DAYS);
        item.insert(TTL_ATTRIBUTE.to_string(), AttributeValue::N(expires_at.timestamp().to_string()));
        item.insert("doc".to_string(), s(encode(&rejected)?));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn list_rejected(&self, limit: usize) -> Result<Vec<RejectedMail>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(REJECTED_PK))
            .scan_index_forward(false);
        self.query_all(request, limit)
            .await?
            .iter()
            .map(|item| decode(string_attr(item, "doc")?))
            .collect()
    }

    async fn list_due(&self, kind: RecordKind, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<DueItem>, StoreError> {
        // `~` sorts after every character of a case id, so the bound includes everything due at `before`.
        let upper = format!("{}#~", due_text(before));
        let mut due = Vec::new();
        for shard in 0..DUE_SHARDS {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_pk = :pk AND due_sk <= :upper")
                .expression_attribute_values(":pk", s(format!("DUE#{}#{shard}", kind.type_name())))
                .expression_attribute_values(":upper", s(upper.clone()));
            for item in self.query_all(request, limit).await? {
                let due_sk = string_attr(&item, "due_sk")?;
                let mut parts = due_sk.splitn(3, '#');
                let (Some(at), Some(case), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let key = string_attr(&item, "sk")?.to_string();
                let (Some(case_id), Ok(at)) = (CaseId::parse(case), chrono::DateTime::parse_from_rfc3339(at)) else {
                    continue;
                };
                due.push(DueItem {
                    case_id,
                    key,
                    due_at: at.with_timezone(&chrono::Utc),
                });
            }
        }
        due.sort_by_key(|d| d.due_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn list_queue(&self, queue: Queue, limit: usize) -> Result<Vec<QueueItem>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(QUEUE_INDEX)
            .key_condition_expression("queue_pk = :pk")
            .expression_attribute_values(":pk", s(format!("QUEUE#{}", queue.name())));
        let mut items = Vec::new();
        for item in self.query_all(request, limit).await? {
            let queue_sk = string_attr(&item, "queue_sk")?;
            let mut parts = queue_sk.splitn(3, '#');
            let (Some(at), Some(case), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Some(case_id), Ok(at)) = (CaseId::parse(case), chrono::DateTime::parse_from_rfc3339(at)) else {
                continue;
            };
            items.push(QueueItem {
                case_id,
                key: key.to_string(),
                since: at.with_timezone(&chrono::Utc),
            });
        }
        Ok(items)
    }

    async fn daily_counts(&self, since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<Vec<DailyCount>, StoreError> {
        super::check_counter_period(since, until)?;
        let mut totals: std::collections::BTreeMap<(chrono::NaiveDate, String, &'static str), u64> = Default::default();
        let mut day = since;
        while day <= until {
            for shard in 0..DUE_SHARDS {
                let request = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(stats_pk(day, shard)))
                    .consistent_read(true);
                for item in self.query_all(request, usize::MAX).await? {
                    let intent = string_attr(&item, "intent")?.to_string();
                    for fact in crate::metrics::Fact::ALL {
                        let Some(AttributeValue::N(n)) = item.get(fact.metric_name()) else {
                            continue;
                        };
                        let n: u64 = n.parse().map_err(|_| StoreError::Corrupt(format!("bad counter {n:?}")))?;
                        let total = totals.entry((day, intent.clone(), fact.metric_name())).or_default();
                        *total = total.saturating_add(n);
                    }
                }
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        totals
            .into_iter()
            .filter(|(_, value)| *value > 0)
            .map(|((day, intent, metric), value)| {
                Ok(DailyCount {
                    day,
                    intent,
                    fact: super::fact_named(metric).ok_or_else(|| StoreError::Corrupt(format!("unknown counter {metric:?}")))?,
                    value,
                })
            })
            .collect()
    }

    async fn list_case_ids(&self, limit: usize) -> Result<Vec<CaseId>, StoreError> {
        // Operators' tool only: a filtered scan. Request paths never call it.
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", s(CASE_SK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in page.items.unwrap_or_default() {
                if let Some(id) = string_attr(&item, "case_id").ok().and_then(CaseId::parse) {
                    ids.push(id);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() || ids.len() >= limit {
                break;
            }
        }
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }
}
