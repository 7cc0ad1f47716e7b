//! The embedded store: one SQLite file in WAL mode under the data directory, and the SQL of
//! every [`Ledger`] operation.
//!
//! **Group commit.** Every write is a job sent to one writer thread. The thread takes every job
//! waiting, runs them inside one transaction, commits once (one fsync for the lot), and only
//! then answers each caller. A caller is told "committed" only after the commit succeeded, so a
//! `202` never precedes durability, and a burst of submissions shares one fsync instead of
//! paying one each.
//!
//! A job runs in its own savepoint, so its error undoes only its own writes; except documents,
//! the hot path, which refuse before they write and need none. A job that fails otherwise
//! (the disk, the database) spoils its group: the jobs after it are not run, the transaction
//! is rolled back, and every caller of the group is told nothing was committed.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::*;
use crate::audit::{ChainBreak, ChainSummary};
use crate::clock::rfc3339;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

/// Most jobs one transaction takes; the rest wait for the next commit.
const MAX_GROUP: usize = 1024;

type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Done + Send>;

/// What a job leaves behind in the open transaction.
struct Done {
    /// Answers the caller once the commit is known.
    reply: Reply,
    /// Set when the job failed with an error that is not a refusal and what it wrote may be
    /// left in the transaction (no savepoint, or one that could not be undone): nothing of its
    /// group may be committed. Errors of the reads before a document's first write count too.
    spoiled: Option<String>,
}

/// The SQLite store, shared behind an `Arc`: one writer thread (group commit), one reader connection.
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS consignments (
    ucr TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    released_at INTEGER
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    ucr TEXT NOT NULL REFERENCES consignments(ucr),
    document_type TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    schema_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT NOT NULL,
    sender TEXT NOT NULL,
    payload TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    idempotency_key TEXT,
    body_sha256 TEXT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_ucr ON documents(ucr);
CREATE UNIQUE INDEX IF NOT EXISTS documents_by_idempotency_key ON documents(sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_by_identity ON documents(sender, ucr, document_type);
-- A document's first receipt, answered again to a resend. Apart from the document, so the
-- document row (with its payload) is written once, not written and then updated. Stores of
-- earlier versions keep it in documents.receipt.
CREATE TABLE IF NOT EXISTS receipts (
    document_id TEXT PRIMARY KEY,
    receipt TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id),
    agency TEXT NOT NULL,
    topic TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dispatched_at INTEGER,
    first_answer_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    failed_at INTEGER,
    UNIQUE (document_id, agency)
);
CREATE TABLE IF NOT EXISTS delivery_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_events_by_delivery ON delivery_events(delivery_id);
CREATE TABLE IF NOT EXISTS status_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ucr TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX IF NOT EXISTS status_outbox_pending ON status_outbox(id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_by_participant ON webhooks(participant);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    participant TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

/// Brings a store written by an earlier version up to date: the retry columns of
/// `deliveries`, and the outbox index that leaves failed deliveries out.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('deliveries')")?;
    let columns = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    for (name, decl) in [
        ("attempts", "INTEGER NOT NULL DEFAULT 0"),
        ("next_attempt_at", "INTEGER NOT NULL DEFAULT 0"),
        ("last_error", "TEXT"),
        ("failed_at", "INTEGER"),
    ] {
        if !columns.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE deliveries ADD COLUMN {name} {decl}"))?;
        }
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS deliveries_outbox;
         CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries(id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
         CREATE INDEX IF NOT EXISTS deliveries_failed ON deliveries(id) WHERE failed_at IS NOT NULL;
         CREATE INDEX IF NOT EXISTS deliveries_by_agency ON deliveries(agency, id);
         CREATE INDEX IF NOT EXISTS documents_by_ucr_sender ON documents(ucr, sender);",
    )?;
    Ok(())
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // temp_store=MEMORY keeps each job's savepoint journal in memory rather than in a temporary
    // file (it only undoes a job inside the open transaction; durability is the WAL's).
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;")?;
    // Every statement of the write path is prepared once and kept.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Statements run through the connection's cache: parsed once, not at every document.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/ventanilla.db` and starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create the data directory {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("ventanilla.db");
        let conn = open(&path)?;
        // The writer's page cache holds a large group's pages without spilling them to the
        // log before the commit (the default is 2 MiB).
        conn.execute_batch("PRAGMA cache_size=-8192")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let reader = open(&path)?;
        // Read work cannot write, whatever it asks.
        reader.execute_batch("PRAGMA query_only=ON")?;
        let (writer, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(conn, jobs))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore { writer, reader: Arc::new(Mutex::new(reader)) })
    }

    /// Opens the store of an existing data directory (for the command-line tools): a mistyped
    /// directory is an error, not a new empty store.
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        existing_store(data_dir)?;
        Self::open(data_dir)
    }

    /// Runs `f` in the next group commit, in a savepoint of its own (an error undoes what it
    /// wrote), and answers once that commit is durable.
    async fn write_job<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(move |conn| in_savepoint(conn, f)).await
    }

    /// Runs `f` in the next group commit without a savepoint: for the document path, whose
    /// refusals ([`StoreError::is_refusal`]) all come before its first write. Savepoints cost
    /// the hot path a copy of every page it touches; without one, any other error (the disk,
    /// the database) spoils the whole group, which is rolled back and answered as not committed.
    async fn write_job_checked_first<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(move |conn| {
            let result = f(conn);
            let spoiled = match &result {
                Err(e) if !e.is_refusal() => Some(e.to_string()),
                _ => None,
            };
            (result, spoiled)
        })
        .await
    }

    async fn enqueue<T, F>(&self, run: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> (Result<T, StoreError>, Option<String>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn: &Connection| {
            let (result, spoiled) = run(conn);
            let reply: Reply = Box::new(move |commit_error: Option<&str>| {
                let _ = tx.send(match (commit_error, result) {
                    (None, result) => result,
                    // Nothing was committed: a job's own failure still says best why not. A
                    // refusal may rest on rows of the same group that were rolled back.
                    (Some(_), Err(own)) if !own.is_refusal() => Err(own),
                    (Some(e), _) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                });
            });
            Done { reply, spoiled }
        });
        self.writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store did not commit this write (see the gateway log)".into()))?
    }

    /// Runs a read on the reader connection, off the async threads.
    async fn read_job<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| StoreError::Unavailable("reader poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// Runs `f` in a savepoint: what it wrote stays only if it succeeded. When the savepoint
/// itself cannot be opened, undone or released, what `f` wrote may still be in the
/// transaction: the job spoils its group (nothing of it is committed).
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> (Result<T, StoreError>, Option<String>) {
    if let Err(e) = conn.exec("SAVEPOINT job", []) {
        let cause = e.to_string();
        return (Err(e.into()), Some(cause));
    }
    let result = f(conn);
    let closed = match &result {
        Ok(_) => conn.exec("RELEASE job", []),
        Err(_) => conn.exec("ROLLBACK TO job", []).and_then(|_| conn.exec("RELEASE job", [])),
    };
    match closed {
        Ok(_) => (result, None),
        Err(e) => {
            let cause = e.to_string();
            (result.and(Err(e.into())), Some(cause))
        }
    }
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.exec("BEGIN IMMEDIATE", []) {
            // Nothing of this group is written. Dropping the jobs drops their reply channels,
            // so each caller gets `StoreError::Unavailable` and answers 503.
            tracing::error!(error = %e, jobs = group.len(), "store: cannot begin a transaction");
            continue;
        }
        let mut done: Vec<Done> = Vec::with_capacity(group.len());
        let mut spoiled: Option<String> = None;
        for job in group {
            if spoiled.is_some() {
                // Not run: dropping the job drops its reply channel, so its caller is answered
                // `StoreError::Unavailable`. Run now, it could write outside any transaction.
                continue;
            }
            let mut d = job(&conn);
            spoiled = d.spoiled.take();
            if spoiled.is_none() && conn.is_autocommit() {
                // SQLite ended the transaction itself (an I/O error, a full disk).
                spoiled = Some("the transaction was rolled back by SQLite".into());
            }
            done.push(d);
        }
        let commit_error = match spoiled.as_deref() {
            Some(cause) => {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %cause, jobs = done.len(), "store: a write failed part-way; its whole group is rolled back");
                Some(format!("a write of the same commit failed part-way ({cause}), so none was committed"))
            }
            None => match conn.exec("COMMIT", []) {
                Ok(_) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    tracing::error!(error = %e, "store: commit failed");
                    Some(e.to_string())
                }
            },
        };
        for d in done {
            (d.reply)(commit_error.as_deref());
        }
    }
}

fn parse_status(s: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("document id {s:?}: {e}")))
}

fn parse_ucr(s: &str) -> Result<Ucr, StoreError> {
    Ucr::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}


fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn parse_state(s: &str) -> Result<ConsignmentState, StoreError> {
    ConsignmentState::parse(s).map_err(corrupt)
}

fn parse_type(s: &str) -> Result<DocumentType, StoreError> {
    DocumentType::parse(s).map_err(corrupt)
}

/// Verifies the audit log of the store in `data_dir`, opened read-only (checking writes
/// nothing), looking for `expected` hashes too.
pub fn verify_audit_at(
    data_dir: &Path,
    expected: &[String],
) -> Result<Result<(ChainSummary, Vec<String>), ChainBreak>, StoreError> {
    let conn = Connection::open_with_flags(existing_store(data_dir)?, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let records = SqliteLedger { conn: &conn }.audit_records()?;
    Ok(crate::audit::verify_expecting(records, expected))
}

/// The store file of `data_dir`, which must exist (the command-line tools: a mistyped
/// directory is an error, not a new empty store).
fn existing_store(data_dir: &Path) -> Result<std::path::PathBuf, StoreError> {
    let path = data_dir.join("ventanilla.db");
    if !path.is_file() {
        return Err(StoreError::Unavailable(format!(
            "no store at {}: give the gateway's --data-dir (VENTANILLA_DATA_DIR)",
            path.display()
        )));
    }
    Ok(path)
}

/// The columns of an outbound delivery, as selected by the outbox and stream queries.
type OutboundRow = (i64, String, String, String, String, String, String, String, String, String, String, i64, String, u32);

fn outbound_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboundRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?,
        r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?))
}

fn outbound(r: OutboundRow) -> Result<OutboundDelivery, StoreError> {
    Ok(OutboundDelivery {
        delivery_id: r.0,
        document_id: parse_uuid(&r.1)?,
        agency: parse_agency(&r.2)?,
        topic: r.3,
        ucr: parse_ucr(&r.4)?,
        document_type: parse_type(&r.5)?,
        schema_version: r.6,
        schema_id: r.7,
        origin: r.8,
        destination: r.9,
        sender: r.10,
        submitted_at: r.11,
        payload: r.12,
        attempts: r.13,
    })
}

fn earlier(row: Option<(String, String, String)>) -> Result<Option<EarlierDocument>, StoreError> {
    row.map(|(id, body_sha256, receipt)| Ok(EarlierDocument { id: parse_uuid(&id)?, body_sha256, receipt })).transpose()
}

/// The rows of one transaction on one connection: the writer's (in its group commit) or the
/// reader's (`PRAGMA query_only`, so read work cannot write).
pub struct SqliteLedger<'c> {
    conn: &'c Connection,
}

impl Ledger for SqliteLedger<'_> {
    fn document_by_key(&mut self, sender: &str, key: &str) -> Result<Option<EarlierDocument>, StoreError> {
        earlier(
            self.conn
                .row(
                    "SELECT d.id, d.body_sha256, COALESCE(r.receipt, d.receipt) FROM documents d LEFT JOIN receipts r ON r.document_id = d.id
                     WHERE d.sender = ?1 AND d.idempotency_key = ?2",
                    params![sender, key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?,
        )
    }

    fn document_by_identity(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType, body_sha256: &str)
        -> Result<Option<EarlierDocument>, StoreError> {
        earlier(
            self.conn
                .row(
                    "SELECT d.id, d.body_sha256, COALESCE(r.receipt, d.receipt) FROM documents d LEFT JOIN receipts r ON r.document_id = d.id
                     WHERE d.sender = ?1 AND d.ucr = ?2 AND d.document_type = ?3
                     ORDER BY (d.body_sha256 = ?4) DESC, d.submitted_at LIMIT 1",
                    params![sender, ucr.as_str(), document_type.as_str(), body_sha256],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?,
        )
    }

    fn consignment_of_another(&mut self, ucr: &Ucr, sender: &str) -> Result<bool, StoreError> {
        Ok(self.conn.row(
            "SELECT EXISTS(SELECT 1 FROM consignments WHERE ucr = ?1)
                AND NOT EXISTS(SELECT 1 FROM documents WHERE ucr = ?1 AND sender = ?2)",
            params![ucr.as_str(), sender],
            |r| r.get(0),
        )?)
    }

    fn open_consignment(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "INSERT OR IGNORE INTO consignments (ucr, state, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![ucr.as_str(), state.as_str(), at],
        )? == 1)
    }

    fn insert_document(&mut self, doc: &NewDocument) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO documents (id, ucr, document_type, schema_version, schema_id, origin, destination, sender, payload,
                                    submitted_at, idempotency_key, body_sha256, receipt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, '')",
            params![
                doc.id.to_string(),
                doc.ucr.as_str(),
                doc.document_type.as_str(),
                doc.schema_version.to_string(),
                doc.schema_id,
                doc.origin.as_str(),
                doc.destination.as_str(),
                doc.sender,
                doc.payload,
                doc.submitted_at,
                doc.idempotency_key,
                doc.body_sha256
            ],
        )?;
        Ok(())
    }

    fn insert_delivery(&mut self, document_id: Uuid, agency: &AgencyId, topic: &str, rule: &str, at: Millis) -> Result<i64, StoreError> {
        self.conn.exec(
            "INSERT INTO deliveries (document_id, agency, topic, rule, status, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![document_id.to_string(), agency.as_str(), topic, rule, at],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn add_delivery_event(&mut self, delivery_id: i64, e: DeliveryEvent<'_>) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![delivery_id, e.status, e.at, e.source, e.reason, e.outcome],
        )?;
        Ok(())
    }

    fn insert_receipt(&mut self, document_id: Uuid, receipt: &str) -> Result<(), StoreError> {
        self.conn.exec("INSERT INTO receipts (document_id, receipt) VALUES (?1, ?2)", params![document_id.to_string(), receipt])?;
        Ok(())
    }

    fn consignment_delivery_statuses(&mut self, ucr: &Ucr) -> Result<Vec<DeliveryStatus>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.status FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE doc.ucr = ?1",
        )?;
        let statuses = stmt.query_map([ucr.as_str()], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        statuses.iter().map(|s| parse_status(s)).collect()
    }

    fn consignment(&mut self, ucr: &Ucr) -> Result<Option<ConsignmentRecord>, StoreError> {
        let row = self
            .conn
            .row(
                "SELECT state, created_at, updated_at, released_at FROM consignments WHERE ucr = ?1",
                [ucr.as_str()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?)),
            )
            .optional()?;
        row.map(|(state, created_at, updated_at, released_at)| {
            Ok(ConsignmentRecord { state: parse_state(&state)?, created_at, updated_at, released_at })
        })
        .transpose()
    }

    fn set_consignment_state(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis) -> Result<(), StoreError> {
        let released_at = (state == ConsignmentState::Released).then_some(at);
        self.conn.exec(
            "UPDATE consignments SET state = ?2, updated_at = ?3, released_at = ?4 WHERE ucr = ?1",
            params![ucr.as_str(), state.as_str(), at, released_at],
        )?;
        Ok(())
    }

    fn touch_consignment(&mut self, ucr: &Ucr, at: Millis) -> Result<(), StoreError> {
        self.conn.exec("UPDATE consignments SET updated_at = ?2 WHERE ucr = ?1", params![ucr.as_str(), at])?;
        Ok(())
    }

    fn documents_of(&mut self, ucr: &Ucr) -> Result<Vec<DocumentRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, document_type, schema_version, origin, destination, sender, submitted_at FROM documents WHERE ucr = ?1 ORDER BY submitted_at, id",
        )?;
        let rows = stmt
            .query_map([ucr.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, i64>(6)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, document_type, schema_version, origin, destination, sender, submitted_at)| {
                Ok(DocumentRecord {
                    id: parse_uuid(&id)?,
                    document_type: parse_type(&document_type)?,
                    schema_version,
                    origin,
                    destination,
                    sender,
                    submitted_at,
                })
            })
            .collect()
    }

    fn deliveries_of(&mut self, document_id: Uuid) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, agency, topic, status, created_at, dispatched_at, first_answer_at, attempts, last_error FROM deliveries WHERE document_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([document_id.to_string()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?, r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?,
                    r.get::<_, u32>(7)?, r.get::<_, Option<String>>(8)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, agency, topic, status, routed_at, dispatched_at, first_answer_at, attempts, last_error)| {
                Ok(DeliveryRecord {
                    id,
                    agency: parse_agency(&agency)?,
                    topic,
                    status: parse_status(&status)?,
                    routed_at,
                    dispatched_at,
                    first_answer_at,
                    attempts,
                    last_error,
                })
            })
            .collect()
    }

    fn history_of(&mut self, delivery_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, at, source, reason, outcome FROM delivery_events WHERE delivery_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([delivery_id], |r| {
                Ok(HistoryEntry { status: r.get(0)?, at: rfc3339(r.get(1)?), source: r.get(2)?, reason: r.get(3)?, outcome: r.get(4)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn document_ucr(&mut self, document_id: Uuid) -> Result<Option<Ucr>, StoreError> {
        let ucr: Option<String> =
            self.conn.row("SELECT ucr FROM documents WHERE id = ?1", [document_id.to_string()], |r| r.get(0)).optional()?;
        ucr.map(|u| parse_ucr(&u)).transpose()
    }

    fn delivery_to(&mut self, document_id: Uuid, agency: &AgencyId) -> Result<Option<DeliveryState>, StoreError> {
        let row: Option<(i64, String, Option<i64>, i64)> = self
            .conn
            .row(
                "SELECT id, status, first_answer_at, created_at FROM deliveries WHERE document_id = ?1 AND agency = ?2",
                params![document_id.to_string(), agency.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(id, status, first_answer_at, routed_at)| {
            Ok(DeliveryState { id, status: parse_status(&status)?, first_answer_at, routed_at })
        })
        .transpose()
    }

    fn record_answer(&mut self, delivery_id: i64, status: DeliveryStatus, at: Millis) -> Result<(), StoreError> {
        self.conn.exec(
            "UPDATE deliveries SET status = ?2, first_answer_at = COALESCE(first_answer_at, ?3), failed_at = NULL,
                                   dispatched_at = COALESCE(dispatched_at, ?3)
             WHERE id = ?1",
            params![delivery_id, status.as_str(), at],
        )?;
        Ok(())
    }

    fn note_first_answer(&mut self, delivery_id: i64, at: Millis) -> Result<(), StoreError> {
        self.conn.exec("UPDATE deliveries SET first_answer_at = COALESCE(first_answer_at, ?2) WHERE id = ?1", params![delivery_id, at])?;
        Ok(())
    }

    fn due_deliveries(&mut self, limit: usize, now: Millis) -> Result<Vec<OutboundDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.document_id, d.agency, d.topic, doc.ucr, doc.document_type, doc.schema_version, doc.schema_id,
                    doc.origin, doc.destination, doc.sender, doc.submitted_at, doc.payload, d.attempts
             FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE d.dispatched_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= ?2
               AND NOT EXISTS (
                   SELECT 1 FROM documents hd JOIN deliveries h ON h.document_id = hd.id
                   WHERE hd.ucr = doc.ucr AND h.topic = d.topic AND h.id < d.id AND h.dispatched_at IS NULL
                     AND (h.failed_at IS NOT NULL OR h.next_attempt_at > ?2))
             ORDER BY d.id LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64, now], outbound_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(outbound).collect()
    }

    fn agency_deliveries(&mut self, agency: &AgencyId, after: i64, limit: usize) -> Result<Vec<OutboundDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.document_id, d.agency, d.topic, doc.ucr, doc.document_type, doc.schema_version, doc.schema_id,
                    doc.origin, doc.destination, doc.sender, doc.submitted_at, doc.payload, d.attempts
             FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE d.agency = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![agency.as_str(), after, limit as i64], outbound_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(outbound).collect()
    }

    fn outbox_backlog(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.row("SELECT COUNT(*) FROM deliveries WHERE dispatched_at IS NULL AND failed_at IS NULL", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    fn delivery_place(&mut self, delivery_id: i64) -> Result<Option<DeliveryPlace>, StoreError> {
        let row: Option<(String, String, String, String)> = self
            .conn
            .row(
                "SELECT d.document_id, doc.ucr, d.agency, d.topic FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE d.id = ?1",
                [delivery_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(document_id, ucr, agency, topic)| Ok(DeliveryPlace { id: delivery_id, document_id, ucr: parse_ucr(&ucr)?, agency, topic }))
            .transpose()
    }

    fn mark_dispatched(&mut self, delivery_id: i64, at: Millis) -> Result<Option<DeliveryPlace>, StoreError> {
        let published: Option<(String, String, String, String)> = self
            .conn
            .row(
                "UPDATE deliveries SET status = 'dispatched', dispatched_at = COALESCE(dispatched_at, ?2)
                 WHERE id = ?1 AND status = 'pending'
                 RETURNING document_id, (SELECT ucr FROM documents WHERE id = document_id), agency, topic",
                params![delivery_id, at],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        match published {
            Some((document_id, ucr, agency, topic)) => {
                Ok(Some(DeliveryPlace { id: delivery_id, document_id, ucr: parse_ucr(&ucr)?, agency, topic }))
            }
            None => {
                self.conn.exec("UPDATE deliveries SET dispatched_at = COALESCE(dispatched_at, ?2) WHERE id = ?1", params![delivery_id, at])?;
                Ok(None)
            }
        }
    }

    fn record_refusal(&mut self, delivery_id: i64, error: &str, next_attempt_at: Millis) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
             WHERE id = ?1 AND dispatched_at IS NULL AND failed_at IS NULL",
            params![delivery_id, next_attempt_at, error],
        )? == 1)
    }

    fn mark_failed(&mut self, delivery_id: i64, at: Millis, error: &str) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "UPDATE deliveries SET status = 'failed', failed_at = ?2, attempts = attempts + 1, last_error = ?3
             WHERE id = ?1 AND status = 'pending' AND dispatched_at IS NULL AND failed_at IS NULL",
            params![delivery_id, at, error],
        )? == 1)
    }

    fn failed_at(&mut self, delivery_id: i64) -> Result<Option<Option<Millis>>, StoreError> {
        Ok(self.conn.row("SELECT failed_at FROM deliveries WHERE id = ?1", [delivery_id], |r| r.get(0)).optional()?)
    }

    fn failed_deliveries(&mut self, agency: Option<&AgencyId>) -> Result<Vec<FailedDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.document_id, doc.ucr, d.agency, d.topic, d.attempts, d.last_error, d.failed_at
             FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE d.failed_at IS NOT NULL AND (?1 IS NULL OR d.agency = ?1) ORDER BY d.id",
        )?;
        let rows = stmt
            .query_map([agency.map(|a| a.as_str())], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?, r.get::<_, u32>(5)?, r.get::<_, Option<String>>(6)?, r.get::<_, Option<i64>>(7)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|r| {
                Ok(FailedDelivery {
                    delivery_id: r.0,
                    document_id: parse_uuid(&r.1)?,
                    ucr: parse_ucr(&r.2)?,
                    agency: parse_agency(&r.3)?,
                    topic: r.4,
                    attempts: r.5,
                    last_error: r.6,
                    failed_at: r.7.map(rfc3339),
                })
            })
            .collect()
    }

    fn requeue_failed(&mut self, delivery_id: i64) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "UPDATE deliveries SET status = 'pending', failed_at = NULL, attempts = 0, next_attempt_at = 0
             WHERE id = ?1 AND failed_at IS NOT NULL",
            [delivery_id],
        )? == 1)
    }

    fn delivery_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT agency, status, COUNT(*) FROM deliveries GROUP BY agency, status ORDER BY agency, status")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?.max(0) as u64)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn queue_status_event(&mut self, ucr: &Ucr, body: &str, at: Millis) -> Result<i64, StoreError> {
        self.conn.exec("INSERT INTO status_outbox (ucr, body, created_at) VALUES (?1, ?2, ?3)", params![ucr.as_str(), body, at])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn unpublished_status_events(&mut self, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ucr, body FROM status_outbox WHERE published_at IS NULL ORDER BY id LIMIT ?1")?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, ucr, body)| Ok(StatusEvent { id, ucr: parse_ucr(&ucr)?, body })).collect()
    }

    fn mark_status_published(&mut self, id: i64, at: Millis) -> Result<(), StoreError> {
        self.conn.exec("UPDATE status_outbox SET published_at = ?2 WHERE id = ?1", params![id, at])?;
        Ok(())
    }

    fn status_events_after(&mut self, sender: Option<&str>, after: i64, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.ucr, s.body FROM status_outbox s
             WHERE s.id > ?1 AND (?2 IS NULL OR EXISTS (SELECT 1 FROM documents d WHERE d.ucr = s.ucr AND d.sender = ?2))
             ORDER BY s.id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![after, sender, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, ucr, body)| Ok(StatusEvent { id, ucr: parse_ucr(&ucr)?, body })).collect()
    }

    fn latest_status_event(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.row("SELECT COALESCE(MAX(id), 0) FROM status_outbox", [], |r| r.get(0))?)
    }

    fn count_webhooks(&mut self, participant: &str) -> Result<usize, StoreError> {
        let n: i64 = self.conn.row("SELECT COUNT(*) FROM webhooks WHERE participant = ?1", [participant], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    fn insert_webhook(&mut self, id: Uuid, participant: &str, url: &str, secret: &str, at: Millis, cursor: i64) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO webhooks (id, participant, url, secret, created_at, cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.to_string(), participant, url, secret, at, cursor],
        )?;
        Ok(())
    }

    fn webhooks_of(&mut self, participant: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, url, created_at, cursor, attempts, last_error, next_attempt_at FROM webhooks WHERE participant = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt
            .query_map([participant], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get(3)?, r.get::<_, i64>(4)?, r.get(5)?, r.get::<_, i64>(6)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, url, created_at, cursor, attempts, last_error, next_attempt_at)| {
                Ok(WebhookRecord {
                    id: Uuid::parse_str(&id).map_err(corrupt)?,
                    url,
                    created_at,
                    cursor,
                    attempts: attempts.max(0) as u32,
                    last_error,
                    next_attempt_at,
                })
            })
            .collect()
    }

    fn delete_webhook(&mut self, participant: &str, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.conn.exec("DELETE FROM webhooks WHERE id = ?1 AND participant = ?2", params![id.to_string(), participant])? > 0)
    }

    fn due_webhooks(&mut self, now: Millis) -> Result<Vec<WebhookTarget>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, participant, url, secret, cursor, attempts FROM webhooks WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, id",
        )?;
        let rows = stmt
            .query_map(params![now], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, participant, url, secret, cursor, attempts)| {
                Ok(WebhookTarget {
                    id: Uuid::parse_str(&id).map_err(corrupt)?,
                    participant,
                    url,
                    secret: crate::config::Secret::new(secret),
                    cursor,
                    attempts: attempts.max(0) as u32,
                })
            })
            .collect()
    }

    fn webhook_delivered(&mut self, id: Uuid, cursor: i64) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "UPDATE webhooks SET cursor = MAX(cursor, ?2), attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = ?1",
            params![id.to_string(), cursor],
        )? > 0)
    }

    fn webhook_failed(&mut self, id: Uuid, error: &str, next_attempt_at: Millis) -> Result<(), StoreError> {
        self.conn.exec(
            "UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
            params![id.to_string(), next_attempt_at, error],
        )?;
        Ok(())
    }

    fn audit_head(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self.conn.row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
    }

    fn insert_audit_record(&mut self, r: &AuditRecord) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO audit_log (seq, at, participant, action, subject, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![r.seq, r.at, r.participant, r.action, r.subject, r.detail, r.prev_hash, r.hash],
        )?;
        Ok(())
    }

    fn audit_records(&mut self) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT seq, at, participant, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditRecord {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    participant: r.get(2)?,
                    action: r.get(3)?,
                    subject: r.get(4)?,
                    detail: r.get(5)?,
                    prev_hash: r.get(6)?,
                    hash: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store for SqliteStore {
    fn write(&self, mode: WriteMode, work: Work) -> StoreFuture<'_, Box<dyn Any + Send>> {
        let run = move |conn: &Connection| work(&mut SqliteLedger { conn });
        match mode {
            WriteMode::Undoable => Box::pin(self.write_job(run)),
            WriteMode::RefusalsFirst => Box::pin(self.write_job_checked_first(run)),
        }
    }

    fn read(&self, work: Work) -> StoreFuture<'_, Box<dyn Any + Send>> {
        Box::pin(self.read_job(move |conn| work(&mut SqliteLedger { conn })))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.write_job(|conn| {
            conn.row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, doc};

    fn open() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(SqliteStore::open(dir.path()).unwrap()), dir)
    }

    crate::conformance_suite!(open);

    #[tokio::test]
    async fn a_receipt_kept_the_earlier_way_is_still_answered_to_a_resend() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = doc("UCR-OLD", &["br-customs"]);
        first.idempotency_key = Some("key-old".into());
        {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let Acceptance::New(_) = crate::submission::accept(&*store, first.clone()).await.unwrap() else { panic!("new") };
        }
        // Make it a store of an earlier version: the receipt in documents.receipt, no receipts row.
        {
            let conn = Connection::open(dir.path().join("ventanilla.db")).unwrap();
            let moved = conn
                .execute(
                    "UPDATE documents SET receipt = (SELECT receipt FROM receipts WHERE document_id = documents.id) WHERE id = ?1",
                    [first.id.to_string()],
                )
                .unwrap();
            assert_eq!(moved, 1);
            conn.execute("DELETE FROM receipts", []).unwrap();
        }
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let mut again = first.clone();
        again.id = Uuid::now_v7();
        match crate::submission::accept(&*store, again.clone()).await.unwrap() {
            Acceptance::Replayed(r) => assert_eq!(r["documentId"], first.id.to_string()),
            other => panic!("expected the first receipt, got {other:?}"),
        }
        again.body_sha256 = "different".into();
        assert!(matches!(crate::submission::accept(&*store, again).await, Err(StoreError::Conflict { .. })));
        let _ = conformance::ack; // the suite's helpers serve this file's own cases too
    }

    #[tokio::test]
    async fn read_work_cannot_write() {
        let (store, _dir) = open();
        let wrote = store.read_with(|l| l.open_consignment(&Ucr::parse("UCR-RO").unwrap(), ConsignmentState::Submitted, 0)).await;
        assert!(matches!(wrote, Err(StoreError::Database(_))), "{wrote:?}");
    }
}
