//! DynamoDB capacity units as DynamoDB bills them, measured on the wire.
//!
//! The meter sits in the HTTP client of a DynamoDB SDK client
//! ([`Meter::client`]), so it sees every request and response of every
//! attempt, whatever the store does with the items: it reads the DynamoDB JSON
//! the SDK sends and receives, never the store's item layout. What a write
//! costs depends on the items before and after it (the larger of the two; the
//! index entries it adds, moves or removes), which the request does not carry,
//! so around each write the meter reads the written keys through a second,
//! unmetered client: before the request, and after it for updates. The table's
//! key and its secondary indexes come from `DescribeTable`, so the meter
//! charges whatever indexes the table really has.
//!
//! The rules, from the DynamoDB Developer Guide ("Item sizes and formats",
//! "Read and write operations", "Global secondary indexes: provisioned
//! throughput considerations", "Transactions: capacity management"):
//!
//! - an item's size is the sum of its attribute names and values (see
//!   [`item_size`]);
//! - a write costs 1 write unit per started KB of the item (the larger of the
//!   item before and after for a put or an update, the deleted item for a
//!   delete), at least 1; in `TransactWriteItems` 2 per started KB of each
//!   item, condition checks included;
//! - a write that fails its condition costs the existing item's size (1 unit
//!   if there is none);
//! - every index entry a write adds or removes costs 1 write unit per started
//!   KB of the entry; moving an item within an index (its index key changes)
//!   costs a delete and a put; changing only projected attributes costs one
//!   write;
//! - a read costs 1 read unit per started 4 KB (strongly consistent), half of
//!   that eventually consistent, twice that in `TransactGetItems`; reading a
//!   missing item still costs one unit (0.5 eventually consistent); a Query or
//!   Scan page costs its summed item size rounded up to 4 KB, counting every
//!   item it evaluated, not only those a filter let through.
//!
//! moto's own `ConsumedCapacity` cannot stand in (moto 5.2.5, asked with
//! `ReturnConsumedCapacity`): a PutItem of a 3 KB item that also enters an
//! index reports 1 unit (DynamoDB: 3, plus 1 for the index entry); deleting it
//! reports 1 (DynamoDB: 3 plus 1); TransactWriteItems reports nothing at all
//! (DynamoDB: 2 per started KB of each item); a strongly consistent GetItem
//! reports 0.5 (DynamoDB: 1 per started 4 KB, 1 for a missing item).
//!
//! Known limits: the reads around a write are separate requests, so a write
//! racing another writer on the same item may be sized from a neighbour's
//! image; a `TransactWriteItems` replayed under the same client token (which
//! DynamoDB answers as a read) is charged as a new transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ProjectionType};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::Blob;
use serde_json::Value;

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's write unit covers 1 KB of item.
pub const WRITE_UNIT_BYTES: usize = 1024;
/// DynamoDB's read unit covers 4 KB of item.
pub const READ_UNIT_BYTES: usize = 4096;

/// What a run cost, in DynamoDB's units.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// `TransactWriteItems` requests DynamoDB answered.
    pub transactions: u64,
    /// Of those, the ones cancelled (a condition failed or a conflict).
    pub cancelled: u64,
    /// `PutItem`, `UpdateItem`, `DeleteItem` and `BatchWriteItem` requests answered.
    pub writes: u64,
    /// Table items put, updated, deleted or condition-checked by those requests.
    pub items_written: u64,
    /// Index entries put or deleted because of those writes.
    pub index_writes: u64,
    /// All write units: the table's and the indexes'.
    pub write_units: f64,
    /// The indexes' part of `write_units`.
    pub index_write_units: f64,
    /// The cancelled transactions' part of `write_units` (their prepare
    /// phase; see [`charge_writes`]), so the assumption can be weighed.
    pub cancelled_write_units: f64,
    /// `GetItem`, `BatchGetItem` and `TransactGetItems` requests answered.
    pub reads: u64,
    /// `Query` and `Scan` pages answered.
    pub queries: u64,
    pub read_units: f64,
    /// DynamoDB requests the meter could not price (its own look-ups failed,
    /// or a request it does not understand). A run that counts any is not a
    /// measurement; the tests check it is zero.
    pub unmetered: u64,
}

// ---------------------------------------------------------------------------
// Item sizes.

/// An item's size by DynamoDB's rules: the UTF-8 bytes of each attribute
/// name plus the size of its value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// A value's size without its name:
/// - S: its UTF-8 bytes; B: its raw bytes (not the base64 on the wire);
/// - N: 1 byte per two significant digits, plus 1 (leading and trailing
///   zeroes do not count);
/// - BOOL and NULL: 1 byte;
/// - L and M: 3 bytes, plus each element's size and 1 byte per element (a map
///   element's size includes its name);
/// - SS, NS and BS: the sum of their elements, each sized as its scalar type
///   (the guide names no per-element overhead for sets).
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        // A type newer than this meter: its wire form is unknown, so it adds
        // nothing rather than a guess.
        _ => 0,
    }
}

/// A number's size: `ceil(significant digits / 2) + 1`. The sign, the
/// decimal point and an exponent are not digits; DynamoDB trims leading and
/// trailing zeroes, so 1200 and 0.0012 both have two significant digits.
pub fn number_size(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Write units for an item (or index entry) of `bytes`: 1 per started KB, at least 1.
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Read units for `bytes` read strongly consistently: 1 per started 4 KB, at least 1.
pub fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64
}

/// How reads are priced relative to a strongly consistent one.
pub fn read_factor(consistent: bool) -> f64 {
    if consistent {
        1.0
    } else {
        0.5
    }
}

/// Transactional reads and writes cost twice: a prepare and a commit per item.
pub const TRANSACTION_FACTOR: f64 = 2.0;

// ---------------------------------------------------------------------------
// The table's shape: its key and its secondary indexes.

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    KeysOnly,
    Include(Vec<String>),
    All,
}

#[derive(Debug, Clone)]
pub struct IndexShape {
    pub name: String,
    /// Partition key, then the sort key if there is one.
    pub key: Vec<String>,
    pub projection: Projection,
}

#[derive(Debug, Clone, Default)]
pub struct TableShape {
    /// Partition key, then the sort key if there is one.
    pub key: Vec<String>,
    /// Global and local secondary indexes alike: writes to either are charged the same way.
    pub indexes: Vec<IndexShape>,
}

impl TableShape {
    /// The item's primary key.
    pub fn key_of(&self, item: &Item) -> Option<Item> {
        self.key
            .iter()
            .map(|name| item.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }

    fn from_description(description: &aws_sdk_dynamodb::types::TableDescription) -> TableShape {
        let names = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            // The hash key first, as DynamoDB lists it; the order only matters for readability.
            let mut keys: Vec<_> = schema.iter().collect();
            keys.sort_by_key(|k| k.key_type().as_str() != "HASH");
            keys.into_iter().map(|k| k.attribute_name().to_string()).collect::<Vec<_>>()
        };
        let projection = |p: Option<&aws_sdk_dynamodb::types::Projection>| match p.and_then(|p| p.projection_type()) {
            Some(ProjectionType::All) => Projection::All,
            Some(ProjectionType::Include) => Projection::Include(p.map(|p| p.non_key_attributes().to_vec()).unwrap_or_default()),
            _ => Projection::KeysOnly,
        };
        let mut indexes: Vec<IndexShape> = description
            .global_secondary_indexes()
            .iter()
            .map(|i| IndexShape {
                name: i.index_name().unwrap_or_default().to_string(),
                key: names(i.key_schema()),
                projection: projection(i.projection()),
            })
            .collect();
        indexes.extend(description.local_secondary_indexes().iter().map(|i| IndexShape {
            name: i.index_name().unwrap_or_default().to_string(),
            key: names(i.key_schema()),
            projection: projection(i.projection()),
        }));
        TableShape {
            key: names(description.key_schema()),
            indexes,
        }
    }
}

impl IndexShape {
    /// The item's entry in this index, or None when the item lacks an index
    /// key attribute (a sparse index holds only items that have them all).
    /// An entry holds the table's key, the index's key and the projected
    /// attributes.
    pub fn entry(&self, table_key: &[String], item: &Item) -> Option<Item> {
        if !self.key.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        if self.projection == Projection::All {
            return Some(item.clone());
        }
        let included: &[String] = match &self.projection {
            Projection::Include(names) => names,
            _ => &[],
        };
        Some(
            table_key
                .iter()
                .chain(&self.key)
                .chain(included)
                .filter_map(|name| item.get(name).map(|v| (name.clone(), v.clone())))
                .collect(),
        )
    }

    /// What a change of an item from `old` to `new` (None: absent) costs this
    /// index, in write units and entries written.
    pub fn charge(&self, table_key: &[String], old: Option<&Item>, new: Option<&Item>) -> (f64, u64) {
        let before = old.and_then(|item| self.entry(table_key, item));
        let after = new.and_then(|item| self.entry(table_key, item));
        match (before, after) {
            (None, None) => (0.0, 0),
            (None, Some(put)) => (write_units(item_size(&put)), 1),
            (Some(deleted), None) => (write_units(item_size(&deleted)), 1),
            (Some(b), Some(a)) => {
                if self.key.iter().any(|k| b.get(k) != a.get(k)) {
                    // The item moves within the index: its old entry is deleted, the new one put.
                    (write_units(item_size(&b)) + write_units(item_size(&a)), 2)
                } else if normalised_item(&b) != normalised_item(&a) {
                    // Same place, other projected values: one write, priced
                    // like an update by the larger of the two entries.
                    (write_units(item_size(&b).max(item_size(&a))), 1)
                } else {
                    (0.0, 0)
                }
            }
        }
    }
}

/// Sets compare as sets, whatever order the wire listed them in.
fn normalised(value: &AttributeValue) -> AttributeValue {
    match value {
        AttributeValue::Ss(s) | AttributeValue::Ns(s) => {
            let mut sorted = s.clone();
            sorted.sort();
            if matches!(value, AttributeValue::Ss(_)) {
                AttributeValue::Ss(sorted)
            } else {
                AttributeValue::Ns(sorted)
            }
        }
        AttributeValue::Bs(b) => {
            let mut sorted = b.clone();
            sorted.sort_by(|x, y| x.as_ref().cmp(y.as_ref()));
            AttributeValue::Bs(sorted)
        }
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(normalised).collect()),
        AttributeValue::M(m) => AttributeValue::M(normalised_item(m)),
        other => other.clone(),
    }
}

fn normalised_item(item: &Item) -> Item {
    item.iter().map(|(k, v)| (k.clone(), normalised(v))).collect()
}

// ---------------------------------------------------------------------------
// Pricing, as pure functions of what was written and read.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Update,
    Delete,
    ConditionCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// DynamoDB applied the write.
    Done,
    /// A standard write whose condition failed.
    ConditionFailed,
    /// A transaction DynamoDB cancelled.
    Cancelled,
    /// Refused before any item was touched (validation, throttling, a server error).
    NotProcessed,
}

/// One item a write request touches.
pub struct Change<'a> {
    pub shape: &'a TableShape,
    pub kind: WriteKind,
    /// The item before the request (None: there was none).
    pub old: Option<&'a Item>,
    /// For a put the item written; for an update the item after it; for a
    /// delete or a condition check None.
    pub new: Option<&'a Item>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct WriteCharge {
    pub table_units: f64,
    pub index_units: f64,
    pub items: u64,
    pub index_writes: u64,
}

/// What a write request costs.
pub fn charge_writes(transactional: bool, outcome: WriteOutcome, changes: &[Change<'_>]) -> WriteCharge {
    let mut charge = WriteCharge::default();
    let size = |item: Option<&Item>| item.map(item_size).unwrap_or(0);
    for change in changes {
        match outcome {
            WriteOutcome::NotProcessed => return WriteCharge::default(),
            // "If the item exists, the number of write capacity units consumed
            // depends on the size of the item ... If the item does not exist,
            // DynamoDB will consume one write capacity unit."
            WriteOutcome::ConditionFailed => charge.table_units += write_units(size(change.old)),
            // The guide prices a transaction as a prepare and a commit per item
            // and does not say what a cancelled one costs; a cancelled
            // transaction never commits, so it is charged the prepare: 1 unit
            // per started KB of each item (the larger of the stored and the
            // proposed one), and no index writes, since nothing was written.
            WriteOutcome::Cancelled => {
                let proposed = if change.kind == WriteKind::Put { change.new } else { None };
                charge.table_units += write_units(size(change.old).max(size(proposed)));
            }
            WriteOutcome::Done => {
                let factor = if transactional { TRANSACTION_FACTOR } else { 1.0 };
                let sized = match change.kind {
                    WriteKind::Put | WriteKind::Update => size(change.old).max(size(change.new)),
                    WriteKind::Delete | WriteKind::ConditionCheck => size(change.old),
                };
                charge.table_units += factor * write_units(sized);
                if change.kind != WriteKind::ConditionCheck {
                    let after = if change.kind == WriteKind::Delete { None } else { change.new };
                    for index in &change.shape.indexes {
                        // Index entries are written after the table's item,
                        // transaction or not ("changes made with transactions
                        // are propagated to global secondary indexes ... after
                        // the transaction completes"): standard writes, not doubled.
                        let (units, writes) = index.charge(&change.shape.key, change.old, after);
                        charge.index_units += units;
                        charge.index_writes += writes;
                    }
                }
            }
        }
        charge.items += 1;
    }
    charge
}

/// Read units for items read one by one (`GetItem`, each item of
/// `BatchGetItem` or `TransactGetItems`): each rounded up to 4 KB on its own,
/// a missing item (None) still one unit, times the consistency factor.
pub fn charge_item_reads(factor: f64, sizes: &[Option<usize>]) -> f64 {
    sizes.iter().map(|size| factor * read_units(size.unwrap_or(0))).sum()
}

/// Read units for one Query or Scan page: the sizes of every item it
/// evaluated, summed, then rounded up to 4 KB (an empty page still reads one
/// unit's worth), times the consistency factor.
pub fn charge_page(factor: f64, sizes: &[usize]) -> f64 {
    factor * read_units(sizes.iter().sum())
}

// ---------------------------------------------------------------------------
// DynamoDB JSON (the wire format) into SDK values.

/// One attribute value from DynamoDB JSON (`{"S": "…"}`, `{"B": "<base64>"}`, …).
pub fn attribute_from_json(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = |v: &Value| -> Option<Vec<String>> { v.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect() };
    let blob = |v: &Value| -> Option<Blob> { aws_smithy_types::base64::decode(v.as_str()?).ok().map(Blob::new) };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_string()),
        "N" => AttributeValue::N(inner.as_str()?.to_string()),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "L" => AttributeValue::L(inner.as_array()?.iter().map(attribute_from_json).collect::<Option<_>>()?),
        "M" => AttributeValue::M(item_from_json(inner)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        _ => return None,
    })
}

/// An item (or key) from DynamoDB JSON.
pub fn item_from_json(value: &Value) -> Option<Item> {
    value
        .as_object()?
        .iter()
        .map(|(name, v)| Some((name.clone(), attribute_from_json(v)?)))
        .collect()
}

fn items_from_json(value: &Value) -> Option<Vec<Item>> {
    match value {
        Value::Null => Some(Vec::new()),
        _ => value.as_array()?.iter().map(item_from_json).collect(),
    }
}

/// One item a write request names, as the request has it.
struct RawWrite {
    table: String,
    kind: WriteKind,
    /// Present for updates, deletes and condition checks.
    key: Option<Item>,
    /// Present for puts.
    item: Option<Item>,
}

fn raw_writes(operation: &str, body: &Value) -> Option<Vec<RawWrite>> {
    fn one(kind: WriteKind, table: &str, request: &Value) -> Option<RawWrite> {
        let (key, item) = match kind {
            WriteKind::Put => (None, Some(item_from_json(&request["Item"])?)),
            _ => (Some(item_from_json(&request["Key"])?), None),
        };
        Some(RawWrite {
            table: table.to_string(),
            kind,
            key,
            item,
        })
    }
    let table = |request: &Value| request["TableName"].as_str().map(str::to_string);
    match operation {
        "PutItem" => Some(vec![one(WriteKind::Put, &table(body)?, body)?]),
        "UpdateItem" => Some(vec![one(WriteKind::Update, &table(body)?, body)?]),
        "DeleteItem" => Some(vec![one(WriteKind::Delete, &table(body)?, body)?]),
        "BatchWriteItem" => {
            let mut writes = Vec::new();
            for (table, requests) in body["RequestItems"].as_object()? {
                for request in requests.as_array()? {
                    writes.push(match (request.get("PutRequest"), request.get("DeleteRequest")) {
                        (Some(put), _) => one(WriteKind::Put, table, put)?,
                        (None, Some(delete)) => one(WriteKind::Delete, table, delete)?,
                        (None, None) => return None,
                    });
                }
            }
            Some(writes)
        }
        "TransactWriteItems" => body["TransactItems"]
            .as_array()?
            .iter()
            .map(|action| {
                let (name, request) = action.as_object()?.iter().next()?;
                let kind = match name.as_str() {
                    "Put" => WriteKind::Put,
                    "Update" => WriteKind::Update,
                    "Delete" => WriteKind::Delete,
                    "ConditionCheck" => WriteKind::ConditionCheck,
                    _ => return None,
                };
                one(kind, &table(request)?, request)
            })
            .collect(),
        _ => None,
    }
}

/// The error type of a DynamoDB error answer (`…#ConditionalCheckFailedException`).
fn error_type(answer: &Value) -> &str {
    answer["__type"].as_str().unwrap_or("").rsplit('#').next().unwrap_or("")
}

fn write_outcome(status: u16, answer: &Value) -> WriteOutcome {
    match (status, error_type(answer)) {
        (200..=299, _) => WriteOutcome::Done,
        (_, "ConditionalCheckFailedException") => WriteOutcome::ConditionFailed,
        (_, "TransactionCanceledException") => WriteOutcome::Cancelled,
        _ => WriteOutcome::NotProcessed,
    }
}

/// `#name` and `:value` placeholders an expression uses.
fn placeholders(expression: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for c in expression.chars().chain(std::iter::once(' ')) {
        match (&mut current, c) {
            (Some(p), c) if c.is_ascii_alphanumeric() || c == '_' => p.push(c),
            (slot, c) => {
                if let Some(p) = slot.take() {
                    found.push(p);
                }
                if c == '#' || c == ':' {
                    *slot = Some(c.to_string());
                }
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The meter.

struct State {
    usage: Mutex<Usage>,
    /// Unmetered: reads the items around writes and the table descriptions.
    plain: aws_sdk_dynamodb::Client,
    shapes: Mutex<HashMap<String, Arc<TableShape>>>,
}

/// Clones share one meter, so every function of a run adds to the same figures.
#[derive(Clone)]
pub struct Meter {
    state: Arc<State>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").field("usage", &self.usage()).finish()
    }
}

/// A write request, with what the meter read before it went out.
struct PreparedWrite {
    operation: String,
    writes: Vec<RawWrite>,
    /// Each write's primary key.
    keys: Vec<Item>,
    shapes: Vec<Arc<TableShape>>,
    /// Each written item as it was stored before the request.
    old: Vec<Option<Item>>,
}

/// What the meter learnt before a request went out.
enum Pending {
    Write(PreparedWrite),
    Read {
        operation: String,
        body: Value,
    },
    /// Not a data-plane request (DescribeTable, CreateTable, …): free.
    Free,
    /// A request the meter could not prepare for; counted as unmetered.
    Unpriced,
}

impl Meter {
    /// A meter whose own look-ups go through `plain`, a client that is not metered.
    pub fn new(plain: aws_sdk_dynamodb::Client) -> Meter {
        Meter {
            state: Arc::new(State {
                usage: Mutex::default(),
                plain,
                shapes: Mutex::default(),
            }),
        }
    }

    /// A DynamoDB client like `casebridge::aws::dynamodb(config)` whose every request is metered.
    pub fn client(&self, config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        use aws_smithy_http_client::tls;
        // The SDK's default client (hyper 1 with rustls on aws-lc), which it
        // would pick for itself had no client been set.
        let inner = config.http_client().unwrap_or_else(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                .build_https()
        });
        let http = MeteringHttpClient {
            inner,
            meter: self.clone(),
        };
        aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(config).http_client(http).build())
    }

    pub fn usage(&self) -> Usage {
        self.state.usage.lock().map(|u| *u).unwrap_or_default()
    }

    fn add(&self, f: impl FnOnce(&mut Usage)) {
        if let Ok(mut usage) = self.state.usage.lock() {
            f(&mut usage);
        }
    }

    async fn shape(&self, table: &str) -> Result<Arc<TableShape>, String> {
        if let Some(shape) = self.state.shapes.lock().ok().and_then(|s| s.get(table).cloned()) {
            return Ok(shape);
        }
        let described = self
            .state
            .plain
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        let description = described.table.ok_or("DescribeTable answered no table")?;
        let shape = Arc::new(TableShape::from_description(&description));
        if let Ok(mut shapes) = self.state.shapes.lock() {
            shapes.insert(table.to_string(), shape.clone());
        }
        Ok(shape)
    }

    /// The stored items for `(table, key)` pairs, strongly consistent, in order.
    async fn images(&self, wanted: &[(String, Item)]) -> Result<Vec<Option<Item>>, String> {
        let mut found: Vec<Option<Item>> = vec![None; wanted.len()];
        let mut by_table: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (table, _)) in wanted.iter().enumerate() {
            by_table.entry(table.as_str()).or_default().push(i);
        }
        for (table, positions) in by_table {
            let shape = self.shape(table).await?;
            let mut keys: Vec<&Item> = Vec::new();
            for &i in &positions {
                // BatchGetItem refuses a key listed twice.
                if !keys.contains(&&wanted[i].1) {
                    keys.push(&wanted[i].1);
                }
            }
            for chunk in keys.chunks(100) {
                let mut pending: Vec<Item> = chunk.iter().map(|k| (*k).clone()).collect();
                let mut rounds = 0;
                while !pending.is_empty() {
                    rounds += 1;
                    if rounds > 50 {
                        return Err(format!("BatchGetItem kept keys of {table} unprocessed"));
                    }
                    let request = KeysAndAttributes::builder()
                        .set_keys(Some(std::mem::take(&mut pending)))
                        .consistent_read(true)
                        .build()
                        .map_err(|e| e.to_string())?;
                    let output = self
                        .state
                        .plain
                        .batch_get_item()
                        .request_items(table, request)
                        .send()
                        .await
                        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
                    for item in output.responses.unwrap_or_default().remove(table).unwrap_or_default() {
                        let key = shape.key_of(&item);
                        for &i in &positions {
                            if key.as_ref() == Some(&wanted[i].1) {
                                found[i] = Some(item.clone());
                            }
                        }
                    }
                    pending = output
                        .unprocessed_keys
                        .unwrap_or_default()
                        .remove(table)
                        .map(|k| k.keys)
                        .unwrap_or_default();
                }
            }
        }
        Ok(found)
    }

    async fn before(&self, operation: &str, body: &Value) -> Pending {
        match operation {
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems" => {
                match self.prepare_write(operation, body).await {
                    Ok(pending) => pending,
                    Err(_) => Pending::Unpriced,
                }
            }
            "GetItem" | "BatchGetItem" | "TransactGetItems" | "Query" | "Scan" => Pending::Read {
                operation: operation.to_string(),
                body: body.clone(),
            },
            // Writes and reads of items go through the operations above;
            // PartiQL (ExecuteStatement and friends) would not, so it is not
            // priced rather than priced wrong.
            "ExecuteStatement" | "BatchExecuteStatement" | "ExecuteTransaction" => Pending::Unpriced,
            _ => Pending::Free,
        }
    }

    async fn prepare_write(&self, operation: &str, body: &Value) -> Result<Pending, String> {
        let writes = raw_writes(operation, body).ok_or("unreadable write request")?;
        let mut shapes = Vec::new();
        let mut keys = Vec::new();
        for write in &writes {
            let shape = self.shape(&write.table).await?;
            let key = match (&write.key, &write.item) {
                (Some(key), _) => key.clone(),
                (None, Some(item)) => shape.key_of(item).ok_or("a put without its key")?,
                (None, None) => return Err("a write without key or item".into()),
            };
            keys.push(key);
            shapes.push(shape);
        }
        let wanted: Vec<(String, Item)> = writes.iter().map(|w| w.table.clone()).zip(keys.iter().cloned()).collect();
        let old = self.images(&wanted).await?;
        Ok(Pending::Write(PreparedWrite {
            operation: operation.to_string(),
            writes,
            keys,
            shapes,
            old,
        }))
    }

    async fn after(&self, pending: Pending, status: u16, answer: &[u8]) {
        let answer: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        let priced = match pending {
            Pending::Free => Ok(()),
            Pending::Unpriced => Err("not prepared".to_string()),
            Pending::Write(prepared) => self.account_write(prepared, status, &answer).await,
            Pending::Read { operation, body } => self.account_read(&operation, &body, status, &answer).await,
        };
        if priced.is_err() {
            self.add(|u| u.unmetered += 1);
        }
    }

    async fn account_write(&self, prepared: PreparedWrite, status: u16, answer: &Value) -> Result<(), String> {
        let PreparedWrite {
            operation,
            writes,
            keys,
            shapes,
            old,
        } = prepared;
        let outcome = write_outcome(status, answer);
        // BatchWriteItem answers 200 and lists what it did not get to; those cost nothing.
        let mut skipped = vec![false; writes.len()];
        if operation == "BatchWriteItem" && outcome == WriteOutcome::Done {
            for (table, requests) in answer["UnprocessedItems"].as_object().into_iter().flatten() {
                for request in requests.as_array().into_iter().flatten() {
                    let named = request
                        .get("PutRequest")
                        .map(|r| &r["Item"])
                        .or_else(|| request.get("DeleteRequest").map(|r| &r["Key"]));
                    let Some(item) = named.and_then(item_from_json) else { continue };
                    for (i, write) in writes.iter().enumerate() {
                        if &write.table == table && shapes[i].key_of(&item).as_ref() == Some(&keys[i]) {
                            skipped[i] = true;
                        }
                    }
                }
            }
        }
        // An update's result is only known by reading it back.
        let mut new: Vec<Option<Item>> = writes.iter().map(|w| w.item.clone()).collect();
        if outcome == WriteOutcome::Done {
            let updated: Vec<usize> = (0..writes.len()).filter(|&i| writes[i].kind == WriteKind::Update).collect();
            if !updated.is_empty() {
                let wanted: Vec<(String, Item)> = updated.iter().map(|&i| (writes[i].table.clone(), keys[i].clone())).collect();
                for (&i, image) in updated.iter().zip(self.images(&wanted).await?) {
                    new[i] = image;
                }
            }
        }
        let changes: Vec<Change<'_>> = (0..writes.len())
            .filter(|&i| !skipped[i])
            .map(|i| Change {
                shape: &shapes[i],
                kind: writes[i].kind,
                old: old[i].as_ref(),
                new: new[i].as_ref(),
            })
            .collect();
        let transactional = operation == "TransactWriteItems";
        let charge = charge_writes(transactional, outcome, &changes);
        self.add(|u| {
            if outcome != WriteOutcome::NotProcessed {
                if transactional {
                    u.transactions += 1;
                    if outcome == WriteOutcome::Cancelled {
                        u.cancelled += 1;
                    }
                } else {
                    u.writes += 1;
                }
            }
            u.items_written += charge.items;
            u.index_writes += charge.index_writes;
            u.write_units += charge.table_units + charge.index_units;
            u.index_write_units += charge.index_units;
            if outcome == WriteOutcome::Cancelled {
                u.cancelled_write_units += charge.table_units;
            }
        });
        Ok(())
    }

    async fn account_read(&self, operation: &str, body: &Value, status: u16, answer: &Value) -> Result<(), String> {
        if !(200..300).contains(&status) {
            // Throttled, refused or failed reads read nothing. (A cancelled
            // TransactGetItems is priced the same way: the guide does not say.)
            return Ok(());
        }
        let projected = |request: &Value| request.get("ProjectionExpression").is_some() || request.get("AttributesToGet").is_some();
        let units = match operation {
            "GetItem" => {
                let consistent = body["ConsistentRead"].as_bool().unwrap_or(false);
                let size = if projected(body) {
                    // "Requesting a subset of attributes has no impact on the item size calculations."
                    let table = body["TableName"].as_str().ok_or("GetItem without table")?;
                    let key = item_from_json(&body["Key"]).ok_or("GetItem without key")?;
                    self.images(&[(table.to_string(), key)]).await?.remove(0).map(|i| item_size(&i))
                } else {
                    match &answer["Item"] {
                        Value::Null => None,
                        item => Some(item_size(&item_from_json(item).ok_or("unreadable item")?)),
                    }
                };
                charge_item_reads(read_factor(consistent), &[size])
            }
            "BatchGetItem" => {
                let mut units = 0.0;
                for (table, request) in body["RequestItems"].as_object().ok_or("BatchGetItem without items")? {
                    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
                    let unprocessed = items_from_json(&answer["UnprocessedKeys"][table]["Keys"]).unwrap_or_default();
                    let keys: Vec<Item> = items_from_json(&request["Keys"])
                        .ok_or("unreadable keys")?
                        .into_iter()
                        .filter(|k| !unprocessed.contains(k))
                        .collect();
                    let sizes: Vec<Option<usize>> = if projected(request) {
                        let wanted: Vec<(String, Item)> = keys.iter().map(|k| (table.clone(), k.clone())).collect();
                        self.images(&wanted).await?.iter().map(|i| i.as_ref().map(item_size)).collect()
                    } else {
                        let returned = items_from_json(&answer["Responses"][table]).ok_or("unreadable items")?;
                        let mut sizes: Vec<Option<usize>> = returned.iter().map(|i| Some(item_size(i))).collect();
                        sizes.resize(keys.len().max(returned.len()), None);
                        sizes
                    };
                    units += charge_item_reads(read_factor(consistent), &sizes);
                }
                units
            }
            "TransactGetItems" => {
                let gets = body["TransactItems"].as_array().ok_or("TransactGetItems without items")?;
                let responses = answer["Responses"].as_array().cloned().unwrap_or_default();
                let mut sizes = Vec::new();
                for (i, get) in gets.iter().enumerate() {
                    let get = &get["Get"];
                    let size = if projected(get) {
                        let table = get["TableName"].as_str().ok_or("Get without table")?;
                        let key = item_from_json(&get["Key"]).ok_or("Get without key")?;
                        self.images(&[(table.to_string(), key)]).await?.remove(0).map(|i| item_size(&i))
                    } else {
                        match responses.get(i).map(|r| &r["Item"]) {
                            None | Some(Value::Null) => None,
                            Some(item) => Some(item_size(&item_from_json(item).ok_or("unreadable item")?)),
                        }
                    };
                    sizes.push(size);
                }
                charge_item_reads(TRANSACTION_FACTOR, &sizes)
            }
            _ => {
                // Query or Scan. An index is read eventually consistently
                // (DynamoDB refuses ConsistentRead on a global index).
                let consistent = body["ConsistentRead"].as_bool().unwrap_or(false);
                let filtered = ["FilterExpression", "QueryFilter", "ScanFilter"]
                    .iter()
                    .any(|f| body.get(f).is_some());
                let counted = body["Select"].as_str().is_some_and(|s| s == "COUNT" || s == "SPECIFIC_ATTRIBUTES");
                let items = if filtered || counted || projected(body) {
                    self.evaluated(operation, body).await?
                } else {
                    items_from_json(&answer["Items"]).ok_or("unreadable items")?
                };
                let sizes: Vec<usize> = items.iter().map(item_size).collect();
                charge_page(read_factor(consistent), &sizes)
            }
        };
        self.add(|u| {
            if operation == "Query" || operation == "Scan" {
                u.queries += 1;
            } else {
                u.reads += 1;
            }
            u.read_units += units;
        });
        Ok(())
    }

    /// Every item a filtered or projected Query or Scan page evaluated: the
    /// same page asked again, unmetered, without the filter and the
    /// projection (DynamoDB charges what it read, not what it returned).
    async fn evaluated(&self, operation: &str, body: &Value) -> Result<Vec<Item>, String> {
        let text = |name: &str| body[name].as_str().map(str::to_string);
        let condition = text("KeyConditionExpression");
        let used = placeholders(condition.as_deref().unwrap_or(""));
        let names: Option<HashMap<String, String>> = body["ExpressionAttributeNames"].as_object().map(|names| {
            names
                .iter()
                .filter(|(k, _)| used.contains(k))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        });
        let values: Option<Item> = match body["ExpressionAttributeValues"].as_object() {
            Some(values) => Some(
                values
                    .iter()
                    .filter(|(k, _)| used.contains(k))
                    .map(|(k, v)| Some((k.clone(), attribute_from_json(v)?)))
                    .collect::<Option<Item>>()
                    .ok_or("unreadable expression values")?,
            ),
            None => None,
        };
        let names = names.filter(|n| !n.is_empty());
        let values = values.filter(|v| !v.is_empty());
        let start = match &body["ExclusiveStartKey"] {
            Value::Null => None,
            key => Some(item_from_json(key).ok_or("unreadable start key")?),
        };
        let limit = body["Limit"].as_i64().and_then(|l| i32::try_from(l).ok());
        let consistent = body["ConsistentRead"].as_bool();
        let answer = if operation == "Query" {
            if body.get("KeyConditions").is_some() {
                return Err("legacy KeyConditions are not priced".into());
            }
            self.state
                .plain
                .query()
                .set_table_name(text("TableName"))
                .set_index_name(text("IndexName"))
                .set_key_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .set_exclusive_start_key(start)
                .set_limit(limit)
                .set_scan_index_forward(body["ScanIndexForward"].as_bool())
                .set_consistent_read(consistent)
                .send()
                .await
                .map(|o| o.items.unwrap_or_default())
                .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?
        } else {
            let segment = |name: &str| body[name].as_i64().and_then(|s| i32::try_from(s).ok());
            self.state
                .plain
                .scan()
                .set_table_name(text("TableName"))
                .set_index_name(text("IndexName"))
                .set_exclusive_start_key(start)
                .set_limit(limit)
                .set_segment(segment("Segment"))
                .set_total_segments(segment("TotalSegments"))
                .set_consistent_read(consistent)
                .send()
                .await
                .map(|o| o.items.unwrap_or_default())
                .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?
        };
        Ok(answer)
    }
}

// ---------------------------------------------------------------------------
// The HTTP client that meters: wraps the SDK's own and sees each attempt.

#[derive(Debug)]
struct MeteringHttpClient {
    inner: SharedHttpClient,
    meter: Meter,
}

impl HttpClient for MeteringHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(MeteringConnector {
            inner: self.inner.http_connector(settings, components),
            meter: self.meter.clone(),
        })
    }
}

#[derive(Debug)]
struct MeteringConnector {
    inner: SharedHttpConnector,
    meter: Meter,
}

impl HttpConnector for MeteringConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, meter) = (self.inner.clone(), self.meter.clone());
        HttpConnectorFuture::new(async move {
            // The JSON protocol names the operation in X-Amz-Target
            // ("DynamoDB_20120810.PutItem") and carries the request as JSON.
            let operation = request
                .headers()
                .get("x-amz-target")
                .and_then(|target| target.rsplit('.').next())
                .map(str::to_string);
            let body: Option<Value> = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok());
            let (Some(operation), Some(body)) = (operation, body) else {
                return inner.call(request).await;
            };
            let pending = meter.before(&operation, &body).await;
            let mut response: HttpResponse = inner.call(request).await?;
            // Read the whole answer, price it, and hand the SDK the same bytes.
            let bytes = ByteStream::new(response.take_body())
                .collect()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?
                .into_bytes();
            meter.after(pending, response.status().as_u16(), &bytes).await;
            *response.body_mut() = SdkBody::from(bytes);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    //! Sizes worked out by hand from the Developer Guide's rules, one test per type.

    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn string_is_name_plus_utf8_bytes() {
        // "pk" 2 + "CASE#1" 6.
        assert_eq!(item_size(&item(&[("pk", s("CASE#1"))])), 8);
        // "name" 4 + "Zoë" 4 (ë is two bytes in UTF-8).
        assert_eq!(item_size(&item(&[("name", s("Zoë"))])), 8);
        // An empty string is its name alone.
        assert_eq!(item_size(&item(&[("e", s(""))])), 1);
    }

    #[test]
    fn number_is_one_byte_per_two_significant_digits_plus_one() {
        // "version" 7 + "12": 2 digits → 1 + 1.
        assert_eq!(item_size(&item(&[("version", n("12"))])), 9);
        // "n" 1 + "123.4500": trailing zeroes trimmed → 12345, 5 digits → 3 + 1.
        assert_eq!(item_size(&item(&[("n", n("123.4500"))])), 5);
        // "n" 1 + "0.001": leading zeroes trimmed → 1 digit → 1 + 1.
        assert_eq!(item_size(&item(&[("n", n("0.001"))])), 3);
        // "n" 1 + "-1200": sign not a digit, 12 → 1 + 1.
        assert_eq!(item_size(&item(&[("n", n("-1200"))])), 3);
        // "n" 1 + "1.5E+3": the exponent is not a digit, 15 → 1 + 1.
        assert_eq!(item_size(&item(&[("n", n("1.5E+3"))])), 3);
        // "t" 1 + a 10-digit epoch, 1795000000 → trailing zeroes trimmed to 1795, 4 digits → 2 + 1.
        assert_eq!(item_size(&item(&[("t", n("1795000000"))])), 4);
        // 38 significant digits → 19 + 1.
        assert_eq!(number_size("12345678901234567890123456789012345678"), 20);
        // Zero has no significant digit: 1 byte.
        assert_eq!(number_size("0"), 1);
    }

    #[test]
    fn binary_is_raw_bytes_not_base64() {
        // "b" 1 + 5 raw bytes (8 characters of base64 on the wire).
        let on_wire = serde_json::json!({"b": {"B": "AAECAwQ="}});
        let parsed = item_from_json(&on_wire).unwrap();
        assert_eq!(parsed["b"], AttributeValue::B(Blob::new(vec![0, 1, 2, 3, 4])));
        assert_eq!(item_size(&parsed), 6);
    }

    #[test]
    fn bool_and_null_are_one_byte() {
        // "ok" 2 + 1.
        assert_eq!(item_size(&item(&[("ok", AttributeValue::Bool(true))])), 3);
        // "gone" 4 + 1.
        assert_eq!(item_size(&item(&[("gone", AttributeValue::Null(true))])), 5);
    }

    #[test]
    fn list_is_three_bytes_plus_elements_plus_one_byte_each() {
        // "l" 1 + 3 + ("ab" 2 + 1) + ("7": 1 digit → 2, + 1) = 10.
        assert_eq!(item_size(&item(&[("l", AttributeValue::L(vec![s("ab"), n("7")]))])), 10);
        // An empty list: "l" 1 + 3.
        assert_eq!(item_size(&item(&[("l", AttributeValue::L(vec![]))])), 4);
        // Nested: "l" 1 + 3 + (inner list 3 + (BOOL 1 + 1) = 5, + 1) = 10.
        let nested = AttributeValue::L(vec![AttributeValue::L(vec![AttributeValue::Bool(false)])]);
        assert_eq!(item_size(&item(&[("l", nested)])), 10);
    }

    #[test]
    fn map_is_three_bytes_plus_named_elements_plus_one_byte_each() {
        // "m" 1 + 3 + ("k" 1 + "v" 1 + 1) + ("nn" 2 + BOOL 1 + 1) = 11.
        let map = AttributeValue::M(item(&[("k", s("v")), ("nn", AttributeValue::Bool(false))]));
        assert_eq!(item_size(&item(&[("m", map)])), 11);
        // An empty map: "m" 1 + 3.
        assert_eq!(item_size(&item(&[("m", AttributeValue::M(Item::new()))])), 4);
    }

    #[test]
    fn string_set_is_its_strings() {
        // "ss" 2 + "a" 1 + "bcd" 3.
        assert_eq!(item_size(&item(&[("ss", AttributeValue::Ss(vec!["a".into(), "bcd".into()]))])), 6);
    }

    #[test]
    fn number_set_is_its_numbers() {
        // "ns" 2 + "1" (2) + "-25" (2 digits → 2) + "1000" (1 digit → 2) = 8.
        let set = AttributeValue::Ns(vec!["1".into(), "-25".into(), "1000".into()]);
        assert_eq!(item_size(&item(&[("ns", set)])), 8);
    }

    #[test]
    fn binary_set_is_its_raw_bytes() {
        // "bs" 2 + 2 bytes + 1 byte, from base64 "AQI=" and "Aw==".
        let on_wire = serde_json::json!({"bs": {"BS": ["AQI=", "Aw=="]}});
        let parsed = item_from_json(&on_wire).unwrap();
        assert_eq!(item_size(&parsed), 5);
    }

    #[test]
    fn every_wire_type_parses() {
        let on_wire = serde_json::json!({
            "s": {"S": "x"}, "n": {"N": "1"}, "b": {"B": "AA=="}, "t": {"BOOL": true}, "z": {"NULL": true},
            "l": {"L": [{"S": "y"}]}, "m": {"M": {"k": {"N": "2"}}}, "ss": {"SS": ["a"]}, "ns": {"NS": ["3"]}, "bs": {"BS": ["AA=="]}
        });
        let parsed = item_from_json(&on_wire).expect("all ten types");
        assert_eq!(parsed.len(), 10);
        // s 1+1, n 1+2, b 1+1, t 1+1, z 1+1, l 1+(3+1+1), m 1+(3+1+1+2), ss 2+1, ns 2+2, bs 2+1.
        assert_eq!(item_size(&parsed), 2 + 3 + 2 + 2 + 2 + 6 + 8 + 3 + 4 + 3);
        assert!(item_from_json(&serde_json::json!({"x": {"Q": "?"}})).is_none());
    }

    #[test]
    fn units_are_started_kilobytes() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(3 * 1024), 3.0);
        assert_eq!(read_units(0), 1.0);
        assert_eq!(read_units(4096), 1.0);
        assert_eq!(read_units(4097), 2.0);
    }

    /// A table shaped like the store's: pk/sk, and two sparse keys-only indexes.
    fn shape() -> TableShape {
        let index = |name: &str, pk: &str, sk: &str| IndexShape {
            name: name.into(),
            key: vec![pk.into(), sk.into()],
            projection: Projection::KeysOnly,
        };
        TableShape {
            key: vec!["pk".into(), "sk".into()],
            indexes: vec![index("due", "due_pk", "due_sk"), index("queue", "queue_pk", "queue_sk")],
        }
    }

    /// An item of about `bytes`, optionally in the due index.
    fn record(bytes: usize, due: Option<&str>) -> Item {
        let mut it = item(&[("pk", s("CASE#1")), ("sk", s("TURN#1"))]);
        if let Some(due) = due {
            it.insert("due_pk".into(), s("DUE#Turn#0"));
            it.insert("due_sk".into(), s(due));
        }
        let fill = bytes - item_size(&it) - 3;
        it.insert("doc".into(), s(&"x".repeat(fill)));
        assert_eq!(item_size(&it), bytes);
        it
    }

    #[test]
    fn standard_put_of_three_kilobytes_costs_three() {
        let shape = shape();
        let new = record(3 * 1024, None);
        let change = Change {
            shape: &shape,
            kind: WriteKind::Put,
            old: None,
            new: Some(&new),
        };
        let charge = charge_writes(false, WriteOutcome::Done, &[change]);
        assert_eq!((charge.table_units, charge.index_units), (3.0, 0.0));
    }

    #[test]
    fn transactional_put_costs_double_and_its_index_entry_once() {
        let shape = shape();
        let new = record(1500, Some("2026-11-24T09:00:00Z#CB-1#TURN#1"));
        let change = Change {
            shape: &shape,
            kind: WriteKind::Put,
            old: None,
            new: Some(&new),
        };
        let charge = charge_writes(true, WriteOutcome::Done, &[change]);
        // 1,500 bytes → 2 KB → 4 units in a transaction; the keys-only entry
        // in `due` (pk, sk, due_pk, due_sk: well under 1 KB) → 1.
        assert_eq!(
            charge,
            WriteCharge {
                table_units: 4.0,
                index_units: 1.0,
                items: 1,
                index_writes: 1
            }
        );
    }

    #[test]
    fn replacing_a_larger_item_costs_the_larger() {
        let shape = shape();
        let (old, new) = (record(2500, None), record(300, None));
        let change = Change {
            shape: &shape,
            kind: WriteKind::Put,
            old: Some(&old),
            new: Some(&new),
        };
        assert_eq!(charge_writes(false, WriteOutcome::Done, &[change]).table_units, 3.0);
    }

    #[test]
    fn moving_an_item_in_an_index_costs_a_delete_and_a_put() {
        let shape = shape();
        let old = record(900, Some("2026-11-24T09:00:00Z#CB-1#TURN#1"));
        let new = record(900, Some("2026-11-24T10:00:00Z#CB-1#TURN#1"));
        let change = Change {
            shape: &shape,
            kind: WriteKind::Update,
            old: Some(&old),
            new: Some(&new),
        };
        let charge = charge_writes(false, WriteOutcome::Done, &[change]);
        assert_eq!((charge.table_units, charge.index_units, charge.index_writes), (1.0, 2.0, 2));
    }

    #[test]
    fn leaving_an_index_costs_one_delete_and_staying_put_costs_nothing() {
        let shape = shape();
        let due = "2026-11-24T09:00:00Z#CB-1#TURN#1";
        let (old, gone) = (record(900, Some(due)), record(900, None));
        let left = Change {
            shape: &shape,
            kind: WriteKind::Put,
            old: Some(&old),
            new: Some(&gone),
        };
        assert_eq!(charge_writes(false, WriteOutcome::Done, &[left]).index_writes, 1);
        // Same index key, other `doc`: a keys-only index does not project `doc`.
        let mut changed = old.clone();
        changed.insert("doc".into(), s("other"));
        let stayed = Change {
            shape: &shape,
            kind: WriteKind::Put,
            old: Some(&old),
            new: Some(&changed),
        };
        assert_eq!(charge_writes(false, WriteOutcome::Done, &[stayed]).index_writes, 0);
    }

    #[test]
    fn changing_a_projected_attribute_costs_one_index_write() {
        let mut shape = shape();
        shape.indexes[0].projection = Projection::Include(vec!["status".into()]);
        let due = "2026-11-24T09:00:00Z#CB-1#TURN#1";
        let mut old = record(900, Some(due));
        old.insert("status".into(), s("calling"));
        let mut new = old.clone();
        new.insert("status".into(), s("awaiting"));
        let change = Change {
            shape: &shape,
            kind: WriteKind::Update,
            old: Some(&old),
            new: Some(&new),
        };
        let charge = charge_writes(false, WriteOutcome::Done, &[change]);
        assert_eq!((charge.index_units, charge.index_writes), (1.0, 1));
    }

    #[test]
    fn delete_costs_the_deleted_item_and_its_index_entry() {
        let shape = shape();
        let old = record(2100, Some("2026-11-24T09:00:00Z#CB-1#TURN#1"));
        let change = Change {
            shape: &shape,
            kind: WriteKind::Delete,
            old: Some(&old),
            new: None,
        };
        let charge = charge_writes(false, WriteOutcome::Done, &[change]);
        assert_eq!((charge.table_units, charge.index_units), (3.0, 1.0));
        // Deleting nothing still costs a unit.
        let nothing = Change {
            shape: &shape,
            kind: WriteKind::Delete,
            old: None,
            new: None,
        };
        assert_eq!(charge_writes(false, WriteOutcome::Done, &[nothing]).table_units, 1.0);
    }

    #[test]
    fn condition_check_in_a_transaction_costs_double_its_item() {
        let shape = shape();
        let old = record(1800, Some("2026-11-24T09:00:00Z#CB-1#TURN#1"));
        let check = Change {
            shape: &shape,
            kind: WriteKind::ConditionCheck,
            old: Some(&old),
            new: None,
        };
        let charge = charge_writes(true, WriteOutcome::Done, &[check]);
        assert_eq!((charge.table_units, charge.index_units), (4.0, 0.0));
    }

    #[test]
    fn failed_conditions_and_cancelled_transactions() {
        let shape = shape();
        let (old, new) = (record(2100, None), record(500, None));
        let put = |old| Change {
            shape: &shape,
            kind: WriteKind::Put,
            old,
            new: Some(&new),
        };
        // A failed condition costs the stored item, or 1 when there is none.
        assert_eq!(
            charge_writes(false, WriteOutcome::ConditionFailed, &[put(Some(&old))]).table_units,
            3.0
        );
        assert_eq!(charge_writes(false, WriteOutcome::ConditionFailed, &[put(None)]).table_units, 1.0);
        // A cancelled transaction: the prepare, 1 per started KB, no index writes.
        let cancelled = charge_writes(true, WriteOutcome::Cancelled, &[put(Some(&old)), put(None)]);
        assert_eq!(
            cancelled,
            WriteCharge {
                table_units: 3.0 + 1.0,
                index_units: 0.0,
                items: 2,
                index_writes: 0
            }
        );
        assert_eq!(
            charge_writes(true, WriteOutcome::NotProcessed, &[put(None)]),
            WriteCharge::default()
        );
    }

    #[test]
    fn reads() {
        // A 5 KB item: 2 units strongly consistent, 1 eventually, 4 in a transaction.
        assert_eq!(charge_item_reads(1.0, &[Some(5 * 1024)]), 2.0);
        assert_eq!(charge_item_reads(0.5, &[Some(5 * 1024)]), 1.0);
        assert_eq!(charge_item_reads(TRANSACTION_FACTOR, &[Some(5 * 1024)]), 4.0);
        // A missing item: 1, or 0.5.
        assert_eq!(charge_item_reads(1.0, &[None]), 1.0);
        assert_eq!(charge_item_reads(0.5, &[None]), 0.5);
        // BatchGetItem rounds each item: 1.5 KB + 6.5 KB → 4 KB + 8 KB → 3 units (the guide's example).
        assert_eq!(charge_item_reads(1.0, &[Some(1536), Some(6656)]), 3.0);
        // A Query page sums first: ten items of 4,180 bytes (40.8 KB) → 44 KB → 11 units (the guide's example).
        assert_eq!(charge_page(1.0, &[4180; 10]), 11.0);
        // 1,500 items of 64 bytes → 96 KB → 24 units; eventually consistent 12.
        assert_eq!(charge_page(0.5, &[64; 1500]), 12.0);
        // An empty page still costs the minimum.
        assert_eq!(charge_page(0.5, &[]), 0.5);
    }

    #[test]
    fn placeholders_of_an_expression() {
        assert_eq!(
            placeholders("pk = :pk AND begins_with(#s, :prefix_1)"),
            vec![":pk".to_string(), "#s".to_string(), ":prefix_1".to_string()]
        );
    }

    #[test]
    fn requests_become_writes() {
        let body = serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "c"}}, "UpdateExpression": "SET x = :x"}},
            {"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "d"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "e"}}, "ConditionExpression": "attribute_exists(pk)"}}
        ]});
        let writes = raw_writes("TransactWriteItems", &body).unwrap();
        let kinds: Vec<WriteKind> = writes.iter().map(|w| w.kind).collect();
        assert_eq!(
            kinds,
            vec![WriteKind::Put, WriteKind::Update, WriteKind::Delete, WriteKind::ConditionCheck]
        );
        let batch = serde_json::json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "a"}, "sk": {"S": "c"}}}}
        ]}});
        let writes = raw_writes("BatchWriteItem", &batch).unwrap();
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().all(|w| w.table == "t"));
        assert_eq!(
            write_outcome(
                400,
                &serde_json::json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"})
            ),
            WriteOutcome::Cancelled
        );
        assert_eq!(
            write_outcome(
                400,
                &serde_json::json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"})
            ),
            WriteOutcome::ConditionFailed
        );
        assert_eq!(
            write_outcome(
                400,
                &serde_json::json!({"__type": "com.amazonaws.dynamodb.v20120810#ValidationException"})
            ),
            WriteOutcome::NotProcessed
        );
    }
}
