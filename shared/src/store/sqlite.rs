//! Embedded store on SQLite (bundled): one file, or memory, for the CLI and
//! for running casebridge on a laptop. Same semantics as the DynamoDB adapter.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{case_queue, due_text, record_queue, DueItem, Queue, QueueItem};
use super::{decode, encode, message_index_key, CaseWrite, Commit, CommitError, DailyCount, Existing, RecordWrite, Store, StoreError};
use crate::ids::CaseId;
use crate::model::{Case, Record, RecordKind, RejectedMail};

pub struct SqliteStore {
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    case_id TEXT NOT NULL,
    key TEXT NOT NULL,
    record_type TEXT NOT NULL,
    status TEXT,
    doc TEXT NOT NULL,
    due_at TEXT,
    PRIMARY KEY (case_id, key)
);
-- Due records by kind and time: the sweep and the follow-ups ask for one kind
-- each, so the kind leads (an index on the time alone lost to records_status
-- and made every schedule run read every turn). Replaces records_due.
DROP INDEX IF EXISTS records_due;
CREATE INDEX IF NOT EXISTS records_kind_due ON records (record_type, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_status ON records (record_type, status);
CREATE INDEX IF NOT EXISTS cases_status ON cases (status);
CREATE TABLE IF NOT EXISTS message_index (
    key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    case_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    sort_key TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_counts (
    day TEXT NOT NULL,
    intent TEXT NOT NULL,
    metric TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (day, intent, metric)
);
";

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(backend)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        SqliteStore::with_connection(connection)
    }

    /// A store that never syncs to disk: nothing is lost to a crashed or
    /// killed process (what was written is in the OS's cache), but a power
    /// cut or an OS crash may lose or damage it (WAL with `synchronous =
    /// OFF`). For scratch stores whose work can be redone from its input,
    /// like `casebridge replay`'s; the live store keeps the default, a sync
    /// per commit. Savepoints and temporary tables stay in memory.
    pub fn open_scratch(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(backend)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        connection.pragma_update(None, "synchronous", "OFF").map_err(backend)?;
        connection.pragma_update(None, "temp_store", "MEMORY").map_err(backend)?;
        // A replay reads back what it just wrote, case by case: 64 MiB of
        // page cache keeps a replay of some thousand mails out of the file.
        connection.pragma_update(None, "cache_size", -65536).map_err(backend)?;
        SqliteStore::with_connection(connection)
    }

    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::with_connection(Connection::open_in_memory().map_err(backend)?)
    }

    fn with_connection(connection: Connection) -> Result<SqliteStore, StoreError> {
        connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        let has_records: bool = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(backend)?
            > 0;
        if has_records {
            let has_due: bool = connection
                .query_row("SELECT count(*) FROM pragma_table_info('records') WHERE name = 'due_at'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(backend)?
                > 0;
            if !has_due {
                connection
                    .execute_batch("ALTER TABLE records ADD COLUMN due_at TEXT;")
                    .map_err(backend)?;
            }
        }
        connection.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    /// Opens a batch: the commits until `end_batch` become savepoints of
    /// one transaction, written (and made visible to other connections) at
    /// its end. For a scratch store whose one user works in units it can
    /// redo, like `casebridge replay`'s mail by mail: a process killed
    /// mid-batch leaves the store as the previous batch ended, and the unit
    /// is done again. One transaction per mail instead of one per step is
    /// most of what the replay's throughput gained. A live store never
    /// batches: its steps must each be durable on their own.
    pub fn begin_batch(&self) -> Result<(), StoreError> {
        let connection = self.lock()?;
        if connection.is_autocommit() {
            connection.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        }
        Ok(())
    }

    /// Ends the batch `begin_batch` opened, writing what it holds.
    pub fn end_batch(&self) -> Result<(), StoreError> {
        let connection = self.lock()?;
        if !connection.is_autocommit() {
            connection.execute_batch("COMMIT").map_err(backend)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::Backend("store lock poisoned".into()))
    }

    fn commit_sync(&self, commit: &Commit) -> Result<(), CommitError> {
        commit.validate()?;
        let mut connection = self.lock()?;
        // Inside a batch (`begin_batch`) a commit is a savepoint of the
        // batch's transaction: its guards are checked the same way and a
        // refused commit rolls back only itself.
        let tx = if connection.is_autocommit() {
            Tx::Top(
                connection
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?,
            )
        } else {
            Tx::Nested(connection.savepoint().map_err(backend)?)
        };
        let case_id = commit.case_id.as_str();

        if let Some(write) = &commit.case {
            let stored: Option<i64> = tx
                .prepare_cached("SELECT version FROM cases WHERE id = ?1")
                .map_err(backend)?
                .query_row([case_id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            let (case, new_version) = match write {
                CaseWrite::Create(case) => {
                    if stored.is_some() {
                        return Err(CommitError::AlreadyExists(Existing::Case(commit.case_id.clone())));
                    }
                    (case, 1u64)
                }
                CaseWrite::Update(case) => {
                    if stored != i64::try_from(case.version).ok() {
                        return Err(CommitError::VersionConflict(commit.case_id.clone()));
                    }
                    (case, case.version + 1)
                }
            };
            let mut stored_case = case.clone();
            stored_case.version = new_version;
            tx.prepare_cached("INSERT OR REPLACE INTO cases (id, version, status, doc) VALUES (?1, ?2, ?3, ?4)")
                .map_err(backend)?
                .execute(params![
                    case_id,
                    new_version as i64,
                    stored_case.status.as_str(),
                    encode(&stored_case)?
                ])
                .map_err(backend)?;
        }

        for write in &commit.records {
            let record = write.record();
            let key = record.key();
            let stored_status: Option<Option<String>> = tx
                .prepare_cached("SELECT status FROM records WHERE case_id = ?1 AND key = ?2")
                .map_err(backend)?
                .query_row([case_id, key], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            match write {
                RecordWrite::Create(_) if stored_status.is_some() => {
                    return Err(CommitError::AlreadyExists(Existing::Record(format!("{case_id}/{key}"))))
                }
                RecordWrite::ReplaceIfStatus { expected_status, .. } if stored_status.flatten().as_deref() != Some(*expected_status) => {
                    return Err(CommitError::StateMismatch(format!("{case_id}/{key}")))
                }
                _ => {}
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO records (case_id, key, record_type, status, doc, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(backend)?
            .execute(params![
                case_id,
                key,
                record.kind().type_name(),
                record.status(),
                encode(record)?,
                record.due_at().map(due_text)
            ])
            .map_err(backend)?;
        }

        for entry in &commit.message_index {
            let key = message_index_key(&entry.message_id);
            if entry.must_be_new {
                let exists: Option<String> = tx
                    .prepare_cached("SELECT case_id FROM message_index WHERE key = ?1")
                    .map_err(backend)?
                    .query_row([&key], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if exists.is_some() {
                    return Err(CommitError::AlreadyExists(Existing::Message(entry.message_id.clone())));
                }
            }
            tx.prepare_cached("INSERT OR REPLACE INTO message_index (key, message_id, case_id) VALUES (?1, ?2, ?3)")
                .map_err(backend)?
                .execute(params![key, entry.message_id, entry.case_id.as_str()])
                .map_err(backend)?;
        }
        for ((day, intent), facts) in commit.grouped_counts() {
            for (fact, n) in facts {
                tx.prepare_cached(
                    "INSERT INTO daily_counts (day, intent, metric, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, intent, metric) DO UPDATE SET value = value + excluded.value",
                )
                .map_err(backend)?
                .execute(params![
                    day.to_string(),
                    intent,
                    fact.metric_name(),
                    i64::try_from(n).unwrap_or(i64::MAX)
                ])
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(())
    }
}

/// A commit's transaction: its own, or a savepoint inside a batch.
enum Tx<'c> {
    Top(rusqlite::Transaction<'c>),
    Nested(rusqlite::Savepoint<'c>),
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Tx::Top(tx) => tx,
            Tx::Nested(sp) => sp,
        }
    }
}

impl Tx<'_> {
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Tx::Top(tx) => tx.commit(),
            Tx::Nested(sp) => sp.commit(),
        }
    }
}

impl Store for SqliteStore {
    async fn get_case(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        let doc: Option<String> = self
            .lock()?
            .prepare_cached("SELECT doc FROM cases WHERE id = ?1")
            .map_err(backend)?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        doc.map(|d| decode(&d)).transpose()
    }

    async fn case_for_message_id(&self, message_id: &str) -> Result<Option<CaseId>, StoreError> {
        let case: Option<String> = self
            .lock()?
            .prepare_cached("SELECT case_id FROM message_index WHERE key = ?1")
            .map_err(backend)?
            .query_row([message_index_key(message_id)], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        case.map(|c| CaseId::parse(&c).ok_or_else(|| StoreError::Corrupt(format!("bad case id {c:?}"))))
            .transpose()
    }

    async fn get_record(&self, case_id: &CaseId, key: &str) -> Result<Option<Record>, StoreError> {
        let doc: Option<String> = self
            .lock()?
            .prepare_cached("SELECT doc FROM records WHERE case_id = ?1 AND key = ?2")
            .map_err(backend)?
            .query_row([case_id.as_str(), key], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        doc.map(|d| decode(&d)).transpose()
    }

    async fn list_records(&self, case_id: &CaseId, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT doc FROM records WHERE case_id = ?1 AND record_type = ?2 ORDER BY key")
            .map_err(backend)?;
        let docs = statement
            .query_map([case_id.as_str(), kind.type_name()], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        docs.iter().map(|d| decode(d)).collect()
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        self.commit_sync(&commit)
    }

    async fn record_rejected(&self, rejected: RejectedMail) -> Result<(), StoreError> {
        let sort_key = format!("{}#{}", rejected.received_at.to_rfc3339(), rejected.key);
        self.lock()?
            .execute(
                "INSERT OR REPLACE INTO rejected (sort_key, doc) VALUES (?1, ?2)",
                params![sort_key, encode(&rejected)?],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn list_rejected(&self, limit: usize) -> Result<Vec<RejectedMail>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT doc FROM rejected ORDER BY sort_key DESC LIMIT ?1")
            .map_err(backend)?;
        let docs = statement
            .query_map([limit as i64], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        docs.iter().map(|d| decode(d)).collect()
    }

    async fn list_due(&self, kind: RecordKind, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<DueItem>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT case_id, key, doc FROM records WHERE due_at IS NOT NULL AND due_at <= ?1 AND record_type = ?3 ORDER BY due_at LIMIT ?2")
            .map_err(backend)?;
        let rows = statement
            .query_map(params![due_text(before), limit as i64, kind.type_name()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let mut due = Vec::new();
        for (case, key, doc) in rows {
            let record: Record = decode(&doc)?;
            if let (Some(case_id), Some(due_at)) = (CaseId::parse(&case), record.due_at()) {
                due.push(DueItem { case_id, key, due_at });
            }
        }
        Ok(due)
    }

    async fn list_queue(&self, queue: Queue, limit: usize) -> Result<Vec<QueueItem>, StoreError> {
        let connection = self.lock()?;
        let mut items = Vec::new();
        match queue {
            Queue::Escalated => {
                let mut statement = connection
                    .prepare_cached("SELECT doc FROM cases WHERE status = 'escalated'")
                    .map_err(backend)?;
                let docs = statement
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                for doc in docs {
                    let case: Case = decode(&doc)?;
                    if let Some((_, since)) = case_queue(&case) {
                        items.push(QueueItem {
                            case_id: case.id,
                            key: "CASE".into(),
                            since,
                        });
                    }
                }
            }
            Queue::Drafts => {
                let mut statement = connection
                    .prepare_cached("SELECT case_id, doc FROM records WHERE record_type = 'Draft' AND status = 'pending_review'")
                    .map_err(backend)?;
                let rows = statement
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                for (case, doc) in rows {
                    let record: Record = decode(&doc)?;
                    if let (Some(case_id), Some((_, since))) = (CaseId::parse(&case), record_queue(&record)) {
                        items.push(QueueItem {
                            case_id,
                            key: record.key().to_string(),
                            since,
                        });
                    }
                }
            }
        }
        items.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.case_id.cmp(&b.case_id)));
        items.truncate(limit);
        Ok(items)
    }

    fn lists_cases_cheaply(&self) -> bool {
        true
    }

    async fn daily_counts(&self, since: chrono::NaiveDate, until: chrono::NaiveDate) -> Result<Vec<DailyCount>, StoreError> {
        super::check_counter_period(since, until)?;
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT day, intent, metric, value FROM daily_counts WHERE day >= ?1 AND day <= ?2 ORDER BY day, intent, metric",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([since.to_string(), until.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(day, intent, metric, value)| {
                Ok(DailyCount {
                    day: day.parse().map_err(|_| StoreError::Corrupt(format!("bad counter day {day:?}")))?,
                    intent,
                    fact: super::fact_named(&metric).ok_or_else(|| StoreError::Corrupt(format!("unknown counter {metric:?}")))?,
                    value: u64::try_from(value).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Two statements stepped side by side over one connection: the cases
    /// in id order, and the records of `kinds` in (case id, key) order, the
    /// table's primary key, merged as they go. No per-case query: a report
    /// over 100,000 cases is one pass (`tests/benches/report.rs`).
    ///
    /// Reading and decoding overlap: this thread steps SQLite and hands each
    /// case's raw documents over in batches; a scoped thread decodes them,
    /// applies `select` (records of a dropped case are not decoded) and
    /// `map`, in order. JSON decoding costs about as much as the reads, so
    /// on two cores the pass takes about the longer of the two, not their
    /// sum. The connection never leaves this thread (it is not `Sync`).
    async fn scan_cases<T, K, M>(&self, kinds: &[RecordKind], limit: usize, select: K, mut map: M) -> Result<Vec<T>, StoreError>
    where
        T: Send,
        K: Fn(&Case) -> bool + Send,
        M: FnMut(&Case, &[Record]) -> T + Send,
    {
        /// One case as read: its document and its wanted records' (documents).
        struct Raw {
            doc: String,
            records: Vec<String>,
        }
        const BATCH: usize = 256;
        let wanted: Vec<&str> = kinds.iter().map(|k| k.type_name()).collect();
        let connection = self.lock()?;
        let mut cases = connection.prepare("SELECT id, doc FROM cases ORDER BY id").map_err(backend)?;
        let mut records = connection
            .prepare("SELECT case_id, record_type, doc FROM records ORDER BY case_id, key")
            .map_err(backend)?;
        let mut case_rows = cases.query([]).map_err(backend)?;
        let mut record_rows = records.query([]).map_err(backend)?;
        let text = |row: &rusqlite::Row<'_>, i: usize| -> Result<String, StoreError> {
            Ok(row.get_ref(i).map_err(backend)?.as_str().map_err(|e| backend(e.into()))?.to_owned())
        };

        std::thread::scope(|scope| {
            let (batches, inbox) = std::sync::mpsc::sync_channel::<Vec<Raw>>(4);
            let decoder = scope.spawn(move || -> Result<Vec<T>, StoreError> {
                let mut out = Vec::new();
                for batch in inbox {
                    for raw in batch {
                        if out.len() >= limit {
                            // Dropping the receiver stops the reader.
                            return Ok(out);
                        }
                        let case: Case = decode(&raw.doc)?;
                        if !select(&case) {
                            continue;
                        }
                        let own = raw.records.iter().map(|doc| decode::<Record>(doc)).collect::<Result<Vec<_>, _>>()?;
                        out.push(map(&case, &own));
                    }
                }
                Ok(out)
            });

            let read = (|| -> Result<(), StoreError> {
                // The record row read but not yet merged: (case id, its document if wanted).
                let mut pending: Option<(String, Option<String>)> = None;
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(row) = case_rows.next().map_err(backend)? {
                    let id = row.get_ref(0).map_err(backend)?.as_str().map_err(|e| backend(e.into()))?.to_owned();
                    let mut raw = Raw {
                        doc: text(row, 1)?,
                        records: Vec::new(),
                    };
                    loop {
                        if pending.is_none() {
                            pending = match record_rows.next().map_err(backend)? {
                                Some(row) => {
                                    let case_id = text(row, 0)?;
                                    let kind = row.get_ref(1).map_err(backend)?.as_str().map_err(|e| backend(e.into()))?;
                                    let doc = if wanted.contains(&kind) { Some(text(row, 2)?) } else { None };
                                    Some((case_id, doc))
                                }
                                None => None,
                            };
                        }
                        let Some((case_id, doc)) = &mut pending else {
                            break;
                        };
                        match case_id.as_str().cmp(id.as_str()) {
                            // A record of a case not in the table (none are written so): skipped.
                            std::cmp::Ordering::Less => {}
                            std::cmp::Ordering::Equal => raw.records.extend(doc.take()),
                            std::cmp::Ordering::Greater => break,
                        }
                        pending = None;
                    }
                    batch.push(raw);
                    if batch.len() == BATCH && batches.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
                        // The decoder stopped: the limit is reached or a document is corrupt.
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = batches.send(batch);
                }
                Ok(())
            })();
            drop(batches);
            let decoded = decoder
                .join()
                .map_err(|_| StoreError::Backend("the scan's decoding thread panicked".into()))?;
            read?;
            decoded
        })
    }

    async fn list_case_ids(&self, limit: usize) -> Result<Vec<CaseId>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT id FROM cases ORDER BY id LIMIT ?1")
            .map_err(backend)?;
        let ids = statement
            .query_map([limit as i64], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(ids.iter().filter_map(|id| CaseId::parse(id)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_in_memory() {
        crate::testing::run_store_conformance(&SqliteStore::in_memory().unwrap()).await;
    }

    #[tokio::test]
    async fn conformance_on_file_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.db");
        let store = SqliteStore::open(&path).unwrap();
        crate::testing::run_store_conformance(&store).await;
        let ids = store.list_case_ids(1000).await.unwrap();
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.list_case_ids(1000).await.unwrap(), ids);
    }

    fn create(id: &CaseId) -> Commit {
        let mut commit = Commit::new(id.clone());
        commit.case = Some(CaseWrite::Create(crate::testing::sample_case(id)));
        commit
    }

    #[tokio::test]
    async fn a_batch_keeps_each_commits_guards_and_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scratch.db");
        let (a, b, c) = (CaseId::generate("CB"), CaseId::generate("CB"), CaseId::generate("CB"));

        // A batch that never ends (the process dies): nothing of it is kept.
        let store = SqliteStore::open_scratch(&path).unwrap();
        store.begin_batch().unwrap();
        store.commit(create(&a)).await.unwrap();
        assert!(store.get_case(&a).await.unwrap().is_some(), "read back inside the batch");
        drop(store);
        let store = SqliteStore::open_scratch(&path).unwrap();
        assert!(store.get_case(&a).await.unwrap().is_none());

        // Inside a batch a refused commit rolls back only itself.
        store.begin_batch().unwrap();
        store.commit(create(&a)).await.unwrap();
        let mut twice = create(&a);
        twice.records.push(RecordWrite::Create(Record::Event(crate::model::TimelineEvent {
            id: "EVT#0000000001#000".into(),
            at: chrono::Utc::now(),
            kind: "note".into(),
            detail: "written with a refused commit".into(),
        })));
        assert!(matches!(store.commit(twice).await, Err(CommitError::AlreadyExists(_))));
        let mut stale = create(&b);
        stale.case = Some(CaseWrite::Update(crate::testing::sample_case(&b)));
        assert!(matches!(store.commit(stale).await, Err(CommitError::VersionConflict(_))));
        store.commit(create(&c)).await.unwrap();
        store.end_batch().unwrap();
        store.end_batch().unwrap(); // no batch open: nothing to do
        drop(store);

        let store = SqliteStore::open_scratch(&path).unwrap();
        assert!(store.get_case(&a).await.unwrap().is_some());
        assert!(store.get_case(&b).await.unwrap().is_none());
        assert!(store.get_case(&c).await.unwrap().is_some());
        assert!(store.list_records(&a, RecordKind::Event).await.unwrap().is_empty());
        // Out of a batch, commits are their own transactions again.
        store.commit(create(&b)).await.unwrap();
        drop(store);
        assert!(SqliteStore::open(&path).unwrap().get_case(&b).await.unwrap().is_some());
    }
}
