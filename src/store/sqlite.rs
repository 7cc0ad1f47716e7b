//! The embedded store: one SQLite file in WAL mode under the data directory.
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
use serde_json::json;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::*;
use crate::audit::{AuditEntry, AuditRecord, ChainBreak, ChainSummary};
use crate::clock::rfc3339;
use crate::tracking::{apply_ack, consignment_state, elapsed};

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

/// The id of the latest status event (0 for none).
fn latest_status_event(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.row("SELECT COALESCE(MAX(id), 0) FROM status_outbox", [], |r| r.get(0))?)
}

/// Appends `entry` to the audit chain, in the caller's transaction; returns its hash.
fn append_audit(conn: &Connection, entry: &AuditEntry) -> Result<String, StoreError> {
    let (last_seq, prev_hash): (i64, String) = conn
        .row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, crate::audit::GENESIS.to_owned()));
    let seq = last_seq + 1;
    let detail = entry.detail.to_string();
    let hash = crate::audit::record_hash(&prev_hash, seq, entry.at, &entry.participant, entry.action, &entry.subject, &detail);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, participant, action, subject, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![seq, entry.at, entry.participant, entry.action, entry.subject, detail, prev_hash, hash])?;
    Ok(hash)
}

fn audit_entry(at: Millis, participant: &str, action: &'static str, subject: String, detail: serde_json::Value) -> AuditEntry {
    AuditEntry { at, participant: participant.to_owned(), action, subject, detail }
}

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
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
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
    async fn write_checked_first<T, F>(&self, f: F) -> Result<T, StoreError>
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
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
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

/// Recomputes a consignment's state from its deliveries; on a change, records it and queues
/// a status event. Returns the state.
fn refresh_consignment(
    conn: &Connection,
    ucr: &Ucr,
    at: Millis,
    cause: serde_json::Value,
) -> Result<ConsignmentState, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.status FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE doc.ucr = ?1",
    )?;
    let statuses = stmt
        .query_map([ucr.as_str()], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let state = consignment_state(statuses.iter().map(|s| parse_status(s)).collect::<Result<Vec<_>, _>>()?);
    let previous: Option<String> = conn
        .row("SELECT state FROM consignments WHERE ucr = ?1", [ucr.as_str()], |r| r.get(0))
        .optional()?;
    if previous.as_deref() != Some(state.as_str()) {
        let released_at = (state == ConsignmentState::Released).then_some(at);
        conn.exec(
            "UPDATE consignments SET state = ?2, updated_at = ?3, released_at = COALESCE(?4, CASE WHEN ?2 = 'released' THEN released_at END) WHERE ucr = ?1",
            params![ucr.as_str(), state.as_str(), at, released_at],
        )?;
        let previous_state = match previous {
            Some(p) => Some(ConsignmentState::parse(&p).map_err(|e| StoreError::Corrupt(e.to_string()))?),
            _ => None,
        };
        let body = StatusChange { ucr: ucr.clone(), state, previous_state, at: rfc3339(at), cause };
        let body = serde_json::to_string(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        conn.exec(
            "INSERT INTO status_outbox (ucr, body, created_at) VALUES (?1, ?2, ?3)",
            params![ucr.as_str(), body, at],
        )?;
    } else {
        conn.exec("UPDATE consignments SET updated_at = ?2 WHERE ucr = ?1", params![ucr.as_str(), at])?;
    }
    Ok(state)
}

/// The first status event of a consignment `doc` has just opened in `state`: its deliveries
/// are the document's own, all pending, so nothing is read back (`refresh_consignment` would
/// find the same).
fn opened_consignment(conn: &Connection, doc: &NewDocument, state: ConsignmentState, cause: serde_json::Value) -> Result<(), StoreError> {
    let body = StatusChange { ucr: doc.ucr.clone(), state, previous_state: None, at: rfc3339(doc.submitted_at), cause };
    let body = serde_json::to_string(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.exec(
        "INSERT INTO status_outbox (ucr, body, created_at) VALUES (?1, ?2, ?3)",
        params![doc.ucr.as_str(), body, doc.submitted_at],
    )?;
    Ok(())
}

/// The first receipt when `doc` repeats an accepted document; a conflict when it reuses the
/// key, or the (sender, UCR, type) identity, of a different one; `None` when it is new.
fn earlier_acceptance(conn: &Connection, doc: &NewDocument) -> Result<Option<Acceptance>, StoreError> {
    let earlier: Option<(String, String, String)> = match &doc.idempotency_key {
        Some(key) => conn
            .row(
                "SELECT d.id, d.body_sha256, COALESCE(r.receipt, d.receipt) FROM documents d LEFT JOIN receipts r ON r.document_id = d.id
                 WHERE d.sender = ?1 AND d.idempotency_key = ?2",
                params![doc.sender, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
        None => conn
            .row(
                "SELECT d.id, d.body_sha256, COALESCE(r.receipt, d.receipt) FROM documents d LEFT JOIN receipts r ON r.document_id = d.id
                 WHERE d.sender = ?1 AND d.ucr = ?2 AND d.document_type = ?3
                 ORDER BY (d.body_sha256 = ?4) DESC, d.submitted_at LIMIT 1",
                params![doc.sender, doc.ucr.as_str(), doc.document_type.as_str(), doc.body_sha256],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
    };
    let Some((id, hash, receipt)) = earlier else { return Ok(None) };
    if hash != doc.body_sha256 {
        let reason = if doc.idempotency_key.is_some() {
            "this Idempotency-Key was already used for a different document"
        } else {
            "a different document of this type was already accepted from you for this UCR"
        };
        return Err(StoreError::Conflict { document: parse_uuid(&id)?, reason });
    }
    let receipt = serde_json::from_str(&receipt).map_err(|e| StoreError::Corrupt(format!("stored receipt: {e}")))?;
    Ok(Some(Acceptance::Replayed(receipt)))
}

/// Commits `doc` or refuses it. Every refusal ([`StoreError::is_refusal`]) is decided before
/// the first write: the writer runs this without a savepoint (`write_checked_first`).
fn insert_document(conn: &Connection, doc: &NewDocument) -> Result<Acceptance, StoreError> {
    if let Some(earlier) = earlier_acceptance(conn, doc)? {
        if let Acceptance::Replayed(receipt) = &earlier {
            let first = receipt["documentId"].as_str().unwrap_or_default().to_owned();
            let detail = json!({"ucr": doc.ucr, "documentType": doc.document_type, "idempotencyKey": doc.idempotency_key});
            append_audit(conn, &audit_entry(doc.submitted_at, &doc.sender, "submission.replayed", first, detail))?;
        }
        return Ok(earlier);
    }
    if doc.backlog_full {
        return Err(StoreError::BacklogFull);
    }
    // A consignment is its opener's: another participant may not add documents to it (nor
    // learn its state from the receipt).
    let foreign: bool = conn.row(
        "SELECT EXISTS(SELECT 1 FROM consignments WHERE ucr = ?1)
            AND NOT EXISTS(SELECT 1 FROM documents WHERE ucr = ?1 AND sender = ?2)",
        params![doc.ucr.as_str(), doc.sender],
        |r| r.get(0),
    )?;
    if foreign {
        return Err(StoreError::ConsignmentOfAnother(doc.ucr.clone()));
    }
    // Were this document to open the consignment, these would be its only deliveries, all pending.
    let opening_state = consignment_state(doc.deliveries.iter().map(|_| DeliveryStatus::Pending));
    let created = conn.exec(
        "INSERT OR IGNORE INTO consignments (ucr, state, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
        params![doc.ucr.as_str(), opening_state.as_str(), doc.submitted_at],
    )? == 1;
    conn.exec(
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
    let mut deliveries = Vec::with_capacity(doc.deliveries.len());
    for (agency, topic, rule) in &doc.deliveries {
        conn.exec(
            "INSERT INTO deliveries (document_id, agency, topic, rule, status, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![doc.id.to_string(), agency.as_str(), topic, rule, doc.submitted_at],
        )?;
        let id = conn.last_insert_rowid();
        conn.exec(
            "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, 'pending', ?2, 'gateway', ?3, 'applied')",
            params![id, doc.submitted_at, format!("routed by rule: {rule}")],
        )?;
        deliveries.push(ReceiptDelivery {
            agency: agency.clone(),
            topic: topic.clone(),
            status: DeliveryStatus::Pending,
            status_detail: (!doc.broker_available).then_some("broker-unavailable"),
            rule: rule.clone(),
        });
    }
    let cause = json!({
        "kind": if created { "created" } else { "document" },
        "documentId": doc.id,
        "documentType": doc.document_type,
    });
    let state = if created {
        // A consignment this document opens has no deliveries but these, all pending: its state
        // and its first status event follow without reading anything back.
        opened_consignment(conn, doc, opening_state, cause)?;
        opening_state
    } else {
        refresh_consignment(conn, &doc.ucr, doc.submitted_at, cause)?
    };
    // The submission and its routing decision, in the same transaction.
    let detail = json!({
        "ucr": doc.ucr,
        "documentType": doc.document_type,
        "schemaVersion": doc.schema_version,
        "origin": doc.origin,
        "destination": doc.destination,
        "bodySha256": doc.body_sha256,
        "idempotencyKey": doc.idempotency_key,
        "routing": deliveries.iter().map(|d| json!({"agency": d.agency, "topic": d.topic, "rule": d.rule})).collect::<Vec<_>>(),
    });
    let audit_hash = append_audit(conn, &audit_entry(doc.submitted_at, &doc.sender, "submission.accepted", doc.id.to_string(), detail))?;
    let receipt = Receipt {
        document_id: doc.id,
        ucr: doc.ucr.clone(),
        document_type: doc.document_type.clone(),
        schema_version: doc.schema_version,
        submitted_at: rfc3339(doc.submitted_at),
        consignment_state: state,
        deliveries,
        audit_hash,
    };
    let text = serde_json::to_string(&receipt).map_err(|e| StoreError::Corrupt(format!("receipt: {e}")))?;
    conn.exec("INSERT INTO receipts (document_id, receipt) VALUES (?1, ?2)", params![doc.id.to_string(), text])?;
    Ok(Acceptance::New(receipt))
}

fn apply(conn: &Connection, ack: &AckRecord) -> Result<AckApplied, StoreError> {
    let doc_id = ack.document_id.to_string();
    let ucr: String = conn
        .row("SELECT ucr FROM documents WHERE id = ?1", [&doc_id], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::UnknownDocument(ack.document_id))?;
    let ucr = parse_ucr(&ucr)?;
    let (delivery_id, status, first_answer, routed_at): (i64, String, Option<i64>, i64) = conn
        .row(
            "SELECT id, status, first_answer_at, created_at FROM deliveries WHERE document_id = ?1 AND agency = ?2",
            params![doc_id, ack.agency.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotRouted { document: ack.document_id, agency: ack.agency.clone() })?;
    let current = parse_status(&status)?;
    let outcome = apply_ack(current, ack.status);
    let detail = json!({"agency": ack.agency, "status": ack.status, "outcome": outcome, "source": ack.source, "deliveryId": delivery_id});
    append_audit(conn, &audit_entry(ack.at, &ack.by, "acknowledgment.recorded", ack.document_id.to_string(), detail))?;
    conn.exec(
        "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![delivery_id, ack.status.as_str(), ack.at, ack.source, ack.reason, outcome.as_str()],
    )?;
    let (delivery_status, consignment_state) = if outcome.changed() {
        let new = DeliveryStatus::Answered(ack.status);
        conn.exec(
            "UPDATE deliveries SET status = ?2, first_answer_at = COALESCE(first_answer_at, ?3) WHERE id = ?1",
            params![delivery_id, new.as_str(), ack.at],
        )?;
        // The agency answers, so it has the document (from an attempt whose confirmation was
        // lost, or one the broker took after all): the delivery leaves the outbox and the
        // failed list rather than being sent again, and no later failure can overwrite the answer.
        conn.exec(
            "UPDATE deliveries SET failed_at = NULL, dispatched_at = COALESCE(dispatched_at, ?2) WHERE id = ?1",
            params![delivery_id, ack.at],
        )?;
        let cause = json!({"kind": "acknowledgment", "documentId": ack.document_id, "agency": ack.agency, "status": ack.status});
        (new, refresh_consignment(conn, &ucr, ack.at, cause)?)
    } else {
        if first_answer.is_none() {
            conn.exec("UPDATE deliveries SET first_answer_at = ?2 WHERE id = ?1", params![delivery_id, ack.at])?;
        }
        let state: String = conn.row("SELECT state FROM consignments WHERE ucr = ?1", [ucr.as_str()], |r| r.get(0))?;
        (current, ConsignmentState::parse(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    };
    Ok(AckApplied {
        document_id: ack.document_id,
        agency: ack.agency.clone(),
        ucr,
        outcome,
        delivery_status,
        consignment_state,
        first_answer_after_ms: first_answer.is_none().then(|| (ack.at - routed_at).max(0)),
    })
}

/// Walks the audit log in order (see `audit::verify_expecting`).
fn walk_audit(conn: &Connection, expected: &[String]) -> Result<Result<(ChainSummary, Vec<String>), ChainBreak>, StoreError> {
    let mut stmt = conn.prepare("SELECT seq, at, participant, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut records = Vec::new();
    while let Some(r) = rows.next()? {
        records.push(AuditRecord {
            seq: r.get(0)?,
            at: r.get(1)?,
            participant: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
            prev_hash: r.get(6)?,
            hash: r.get(7)?,
        });
    }
    Ok(crate::audit::verify_expecting(records, expected))
}

/// Verifies the audit log of the store in `data_dir`, opened read-only (checking writes
/// nothing), looking for `expected` hashes too.
pub fn verify_audit_at(
    data_dir: &Path,
    expected: &[String],
) -> Result<Result<(ChainSummary, Vec<String>), ChainBreak>, StoreError> {
    let conn = Connection::open_with_flags(existing_store(data_dir)?, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    walk_audit(&conn, expected)
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
        document_type: DocumentType::parse(&r.5).map_err(|e| StoreError::Corrupt(e.to_string()))?,
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

/// What an audit record says about a delivery: its document, agency and topic.
fn delivery_detail(conn: &Connection, id: i64) -> Result<serde_json::Value, StoreError> {
    let (document, agency, topic): (String, String, String) = conn
        .prepare_cached("SELECT document_id, agency, topic FROM deliveries WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(delivery_json(id, &document, &agency, &topic))
}

fn delivery_json(id: i64, document: &str, agency: &str, topic: &str) -> serde_json::Value {
    json!({"deliveryId": id, "documentId": document, "agency": agency, "topic": topic})
}

/// Puts the selected failed deliveries back in the outbox, each with a history entry naming
/// the operator, and recomputes their consignments.
fn retry(conn: &Connection, selection: &RetrySelection, by: &str, at: Millis) -> Result<RetryOutcome, StoreError> {
    let mut outcome = RetryOutcome::default();
    let candidates: Vec<i64> = match selection {
        RetrySelection::Deliveries(ids) => {
            let mut failed = Vec::new();
            for id in ids {
                let f: Option<Option<i64>> = conn
                    .row("SELECT failed_at FROM deliveries WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                match f {
                    None => outcome.unknown.push(*id),
                    Some(None) => outcome.not_failed.push(*id),
                    Some(Some(_)) => failed.push(*id),
                }
            }
            failed
        }
        RetrySelection::AllFailed { agency } => {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM deliveries WHERE failed_at IS NOT NULL AND (?1 IS NULL OR agency = ?1) ORDER BY id",
            )?;
            let ids = stmt.query_map([agency.as_ref().map(|a| a.as_str())], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
            ids
        }
    };
    let mut ucrs: Vec<String> = Vec::new();
    for id in candidates {
        let changed = conn.exec(
            "UPDATE deliveries SET status = 'pending', failed_at = NULL, attempts = 0, next_attempt_at = 0
             WHERE id = ?1 AND failed_at IS NOT NULL",
            [id],
        )?;
        if changed == 0 {
            continue;
        }
        conn.exec(
            "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, 'pending', ?2, 'operator', ?3, 'applied')",
            params![id, at, format!("sent again by {by}")],
        )?;
        let detail = delivery_detail(conn, id)?;
        append_audit(conn, &audit_entry(at, by, "delivery.retried", format!("delivery:{id}"), detail))?;
        let ucr: String = conn.row(
            "SELECT doc.ucr FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE d.id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if !ucrs.contains(&ucr) {
            ucrs.push(ucr);
        }
        outcome.retried.push(id);
    }
    for ucr in ucrs {
        let cause = json!({"kind": "retry", "by": by});
        refresh_consignment(conn, &parse_ucr(&ucr)?, at, cause)?;
    }
    Ok(outcome)
}

fn view(conn: &Connection, ucr: &Ucr) -> Result<Option<ConsignmentView>, StoreError> {
    let Some((state, created_at, updated_at, released_at)) = conn
        .row(
            "SELECT state, created_at, updated_at, released_at FROM consignments WHERE ucr = ?1",
            [ucr.as_str()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut docs_stmt = conn.prepare_cached(
        "SELECT id, document_type, schema_version, origin, destination, sender, submitted_at FROM documents WHERE ucr = ?1 ORDER BY submitted_at, id",
    )?;
    let docs = docs_stmt
        .query_map([ucr.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, i64>(6)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut del_stmt = conn.prepare_cached(
        "SELECT id, agency, topic, status, created_at, dispatched_at, first_answer_at, attempts, last_error FROM deliveries WHERE document_id = ?1 ORDER BY id",
    )?;
    let mut ev_stmt = conn.prepare_cached(
        "SELECT status, at, source, reason, outcome FROM delivery_events WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let mut documents = Vec::new();
    let mut senders = Vec::new();
    // agency -> (earliest routing time, earliest answer)
    let mut times: Vec<(AgencyId, Millis, Option<Millis>)> = Vec::new();
    for (id, dtype, version, origin, destination, sender, submitted_at) in docs {
        let rows = del_stmt
            .query_map([&id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?, r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?,
                    r.get::<_, u32>(7)?, r.get::<_, Option<String>>(8)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut deliveries = Vec::new();
        for (did, agency, topic, status, created, dispatched, first_answer, attempts, last_error) in rows {
            let agency = parse_agency(&agency)?;
            match times.iter_mut().find(|t| t.0 == agency) {
                Some(t) => {
                    t.1 = t.1.min(created);
                    t.2 = match (t.2, first_answer) { (Some(a), Some(b)) => Some(a.min(b)), (a, b) => a.or(b) };
                }
                None => times.push((agency.clone(), created, first_answer)),
            }
            let history = ev_stmt
                .query_map([did], |r| {
                    Ok(HistoryEntry {
                        status: r.get(0)?,
                        at: rfc3339(r.get(1)?),
                        source: r.get(2)?,
                        reason: r.get(3)?,
                        outcome: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            deliveries.push(DeliveryView {
                delivery_id: did,
                agency,
                topic,
                status: parse_status(&status)?,
                attempts,
                last_error,
                dispatched_at: dispatched.map(rfc3339),
                first_answer_at: first_answer.map(rfc3339),
                history,
            });
        }
        if !senders.contains(&sender) {
            senders.push(sender.clone());
        }
        documents.push(DocumentView {
            document_id: parse_uuid(&id)?,
            document_type: DocumentType::parse(&dtype).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            schema_version: version,
            origin,
            destination,
            sender,
            submitted_at: rfc3339(submitted_at),
            deliveries,
        });
    }
    Ok(Some(ConsignmentView {
        ucr: ucr.clone(),
        state: ConsignmentState::parse(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: rfc3339(created_at),
        updated_at: rfc3339(updated_at),
        documents,
        time_release: TimeRelease {
            first_submitted_at: rfc3339(created_at),
            released_at: released_at.map(rfc3339),
            submission_to_release_ms: elapsed(created_at, released_at),
            agencies: times
                .into_iter()
                .map(|(agency, from, answer)| AgencyTimes {
                    agency,
                    first_answer_at: answer.map(rfc3339),
                    submission_to_first_answer_ms: elapsed(from, answer),
                })
                .collect(),
        },
        senders,
    }))
}

impl Store for SqliteStore {
    fn accept_document(&self, doc: NewDocument) -> StoreFuture<'_, Acceptance> {
        Box::pin(self.write_checked_first(move |conn| insert_document(conn, &doc)))
    }

    fn accept_documents(&self, docs: Vec<NewDocument>) -> StoreFuture<'_, Vec<Result<Acceptance, StoreError>>> {
        // One job, so one trip to the writer thread for the whole batch. A refused document
        // wrote nothing; any other error ends the job, and its group is not committed.
        Box::pin(self.write_checked_first(move |conn| {
            let mut results = Vec::with_capacity(docs.len());
            for doc in &docs {
                match insert_document(conn, doc) {
                    Err(e) if !e.is_refusal() => return Err(e),
                    result => results.push(result),
                }
            }
            Ok(results)
        }))
    }

    fn pending_deliveries(&self, limit: usize, now: Millis) -> StoreFuture<'_, Vec<OutboundDelivery>> {
        Box::pin(self.read(move |conn| {
            // Deliveries are due unless an earlier delivery of the same topic and UCR is waiting
            // out a retry delay or has failed: a consignment's records keep their order.
            let mut stmt = conn.prepare_cached(
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
        }))
    }

    fn agency_deliveries(&self, agency: AgencyId, after: i64, limit: usize) -> StoreFuture<'_, Vec<OutboundDelivery>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.id, d.document_id, d.agency, d.topic, doc.ucr, doc.document_type, doc.schema_version, doc.schema_id,
                        doc.origin, doc.destination, doc.sender, doc.submitted_at, doc.payload, d.attempts
                 FROM deliveries d JOIN documents doc ON doc.id = d.document_id
                 WHERE d.agency = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![agency.as_str(), after, limit as i64], outbound_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(outbound).collect()
        }))
    }

    fn outbox_backlog(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.read(|conn| {
            let n: i64 = conn.row(
                "SELECT COUNT(*) FROM deliveries WHERE dispatched_at IS NULL AND failed_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(n.max(0) as u64)
        }))
    }

    fn mark_dispatched(&self, delivery_ids: Vec<i64>, at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            for id in delivery_ids {
                // The usual case in one statement: a pending delivery becomes dispatched, and
                // names what the audit record needs. A late confirmation (the delivery was
                // answered first) only fills in when it was dispatched.
                let published = conn
                    .row(
                        "UPDATE deliveries SET status = 'dispatched', dispatched_at = COALESCE(dispatched_at, ?2)
                         WHERE id = ?1 AND status = 'pending' RETURNING document_id, agency, topic",
                        params![id, at],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
                    )
                    .optional()?;
                let was_pending = published.is_some();
                if !was_pending {
                    conn.exec("UPDATE deliveries SET dispatched_at = COALESCE(dispatched_at, ?2) WHERE id = ?1", params![id, at])?;
                }
                conn.exec(
                    "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, 'dispatched', ?2, 'broker', NULL, ?3)",
                    params![id, at, if was_pending { "applied" } else { "late" }],
                )?;
                let detail = match published {
                    Some((document, agency, topic)) => delivery_json(id, &document, &agency, &topic),
                    None => delivery_detail(conn, id)?,
                };
                append_audit(conn, &audit_entry(at, "gateway", "delivery.published", format!("delivery:{id}"), detail))?;
            }
            Ok(())
        }))
    }

    fn record_refusal(&self, delivery_id: i64, at: Millis, error: String, next_attempt_at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            let changed = conn.exec(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND dispatched_at IS NULL AND failed_at IS NULL",
                params![delivery_id, next_attempt_at, error],
            )?;
            if changed == 1 {
                let mut detail = delivery_detail(conn, delivery_id)?;
                detail["error"] = json!(error);
                append_audit(conn, &audit_entry(at, "gateway", "delivery.refused", format!("delivery:{delivery_id}"), detail))?;
                let reason = format!("{error}; next attempt at {}", rfc3339(next_attempt_at));
                conn.exec(
                    "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, 'refused', ?2, 'broker', ?3, 'applied')",
                    params![delivery_id, at, reason],
                )?;
            }
            Ok(())
        }))
    }

    fn mark_failed(&self, delivery_id: i64, at: Millis, error: String) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            let changed = conn.exec(
                "UPDATE deliveries SET status = 'failed', failed_at = ?2, attempts = attempts + 1, last_error = ?3
                 WHERE id = ?1 AND status = 'pending' AND dispatched_at IS NULL AND failed_at IS NULL",
                params![delivery_id, at, error],
            )?;
            if changed == 0 {
                return Ok(());
            }
            let mut detail = delivery_detail(conn, delivery_id)?;
            detail["error"] = json!(error);
            append_audit(conn, &audit_entry(at, "gateway", "delivery.failed", format!("delivery:{delivery_id}"), detail))?;
            conn.exec(
                "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome) VALUES (?1, 'failed', ?2, 'gateway', ?3, 'applied')",
                params![delivery_id, at, format!("{error}; waiting for an operator to send it again")],
            )?;
            let (ucr, document, agency): (String, String, String) = conn.row(
                "SELECT doc.ucr, doc.id, d.agency FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE d.id = ?1",
                [delivery_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let cause = json!({"kind": "deliveryFailed", "deliveryId": delivery_id, "documentId": document, "agency": agency});
            refresh_consignment(conn, &parse_ucr(&ucr)?, at, cause)?;
            Ok(())
        }))
    }

    fn failed_deliveries(&self, agency: Option<AgencyId>) -> StoreFuture<'_, Vec<FailedDelivery>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.id, d.document_id, doc.ucr, d.agency, d.topic, d.attempts, d.last_error, d.failed_at
                 FROM deliveries d JOIN documents doc ON doc.id = d.document_id
                 WHERE d.failed_at IS NOT NULL AND (?1 IS NULL OR d.agency = ?1) ORDER BY d.id",
            )?;
            let rows = stmt
                .query_map([agency.as_ref().map(|a| a.as_str())], |r| {
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
        }))
    }

    fn retry_deliveries(&self, selection: RetrySelection, by: String, at: Millis) -> StoreFuture<'_, RetryOutcome> {
        Box::pin(self.write(move |conn| retry(conn, &selection, &by, at)))
    }

    fn status_events_after(&self, sender: Option<String>, after: i64, limit: usize) -> StoreFuture<'_, Vec<StatusEvent>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT s.id, s.ucr, s.body FROM status_outbox s
                 WHERE s.id > ?1 AND (?2 IS NULL OR EXISTS (SELECT 1 FROM documents d WHERE d.ucr = s.ucr AND d.sender = ?2))
                 ORDER BY s.id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![after, sender, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(|(id, ucr, body)| Ok(StatusEvent { id, ucr: parse_ucr(&ucr)?, body })).collect()
        }))
    }

    fn delivery_counts(&self) -> StoreFuture<'_, Vec<(String, String, u64)>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT agency, status, COUNT(*) FROM deliveries GROUP BY agency, status ORDER BY agency, status")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?.max(0) as u64)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        }))
    }

    fn audit(&self, entry: AuditEntry) -> StoreFuture<'_, String> {
        Box::pin(self.write(move |conn| append_audit(conn, &entry)))
    }

    fn audit_many(&self, entries: Vec<AuditEntry>) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            for e in &entries {
                append_audit(conn, e)?;
            }
            Ok(())
        }))
    }

    fn apply_acknowledgment(&self, ack: AckRecord) -> StoreFuture<'_, AckApplied> {
        Box::pin(self.write(move |conn| apply(conn, &ack)))
    }

    fn pending_status_events(&self, limit: usize) -> StoreFuture<'_, Vec<StatusEvent>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ucr, body FROM status_outbox WHERE published_at IS NULL ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, ucr, body)| Ok(StatusEvent { id, ucr: parse_ucr(&ucr)?, body }))
                .collect()
        }))
    }

    fn mark_status_published(&self, ids: Vec<i64>, at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            for id in ids {
                conn.exec("UPDATE status_outbox SET published_at = ?2 WHERE id = ?1", params![id, at])?;
            }
            Ok(())
        }))
    }

    fn consignment(&self, ucr: Ucr) -> StoreFuture<'_, Option<ConsignmentView>> {
        Box::pin(self.read(move |conn| view(conn, &ucr)))
    }

    fn register_webhook(&self, participant: String, url: String, secret: String, max: usize, at: Millis) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(self.write(move |conn| {
            let registered: i64 = conn.row("SELECT COUNT(*) FROM webhooks WHERE participant = ?1", [&participant], |r| r.get(0))?;
            if registered >= max as i64 {
                return Ok(None);
            }
            let id = Uuid::now_v7();
            // From the events committed from now on.
            let cursor = latest_status_event(conn)?;
            conn.exec(
                "INSERT INTO webhooks (id, participant, url, secret, created_at, cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id.to_string(), participant, url, secret, at, cursor],
            )?;
            // Without its query, which may carry the receiver's token.
            let shown = url.split(['?', '#']).next().unwrap_or_default();
            append_audit(conn, &audit_entry(at, &participant, "webhook.registered", format!("webhook {id}"), json!({ "url": shown })))?;
            Ok(Some(Webhook {
                id,
                url,
                created_at: rfc3339(at),
                delivered_through: cursor,
                failed_attempts: 0,
                last_error: None,
                next_attempt_at: None,
            }))
        }))
    }

    fn webhooks(&self, participant: String) -> StoreFuture<'_, Vec<Webhook>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, url, created_at, cursor, attempts, last_error, next_attempt_at FROM webhooks WHERE participant = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt
                .query_map([&participant], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get(3)?, r.get::<_, i64>(4)?, r.get(5)?, r.get::<_, i64>(6)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, url, created, cursor, attempts, last_error, next)| {
                    Ok(Webhook {
                        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        url,
                        created_at: rfc3339(created),
                        delivered_through: cursor,
                        failed_attempts: attempts.max(0) as u32,
                        last_error,
                        next_attempt_at: (attempts > 0).then(|| rfc3339(next)),
                    })
                })
                .collect()
        }))
    }

    fn delete_webhook(&self, participant: String, id: Uuid, at: Millis) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let removed = conn.exec("DELETE FROM webhooks WHERE id = ?1 AND participant = ?2", params![id.to_string(), participant])?;
            if removed > 0 {
                append_audit(conn, &audit_entry(at, &participant, "webhook.deleted", format!("webhook {id}"), json!({})))?;
            }
            Ok(removed > 0)
        }))
    }

    fn due_webhooks(&self, now: Millis) -> StoreFuture<'_, Vec<WebhookTarget>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, participant, url, secret, cursor, attempts FROM webhooks WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, id",
            )?;
            let rows = stmt
                .query_map(params![now], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, participant, url, secret, cursor, attempts)| {
                    Ok(WebhookTarget {
                        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        participant,
                        url,
                        secret: crate::config::Secret::new(secret),
                        cursor,
                        attempts: attempts.max(0) as u32,
                    })
                })
                .collect()
        }))
    }

    fn webhook_delivered(&self, id: Uuid, cursor: i64) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let updated = conn.exec(
                "UPDATE webhooks SET cursor = MAX(cursor, ?2), attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = ?1",
                params![id.to_string(), cursor],
            )?;
            Ok(updated > 0)
        }))
    }

    fn latest_status_event(&self) -> StoreFuture<'_, i64> {
        Box::pin(self.read(|conn| latest_status_event(conn)))
    }

    fn webhook_failed(&self, id: Uuid, error: String, next_attempt_at: Millis) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            let error: String = error.chars().take(500).collect();
            conn.exec(
                "UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id.to_string(), next_attempt_at, error],
            )?;
            Ok(())
        }))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.write(|conn| {
            conn.row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_millis;

    fn doc(ucr: &str, agencies: &[&str]) -> NewDocument {
        NewDocument {
            id: Uuid::now_v7(),
            ucr: Ucr::parse(ucr).unwrap(),
            document_type: DocumentType::parse("commercialInvoice").unwrap(),
            schema_version: SchemaVersion::parse("1.0.0").unwrap(),
            schema_id: "x".into(),
            origin: CountryCode::parse("AR").unwrap(),
            destination: CountryCode::parse("BR").unwrap(),
            sender: "demo-trader".into(),
            payload: "{}".into(),
            idempotency_key: None,
            body_sha256: format!("hash-of-{ucr}"),
            submitted_at: now_millis(),
            deliveries: agencies
                .iter()
                .map(|a| (AgencyId::parse(a).unwrap(), format!("t.{a}"), "rule".into()))
                .collect(),
            broker_available: true,
            backlog_full: false,
        }
    }

    fn ack(doc: Uuid, agency: &str, status: AckStatus) -> AckRecord {
        AckRecord {
            document_id: doc,
            agency: AgencyId::parse(agency).unwrap(),
            status,
            reason: None,
            source: "http",
            by: format!("demo-{agency}"),
            at: now_millis(),
        }
    }

    #[tokio::test]
    async fn a_consignment_walks_to_release_in_a_real_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let d = doc("UCR-1", &["br-customs", "br-sanitary"]);
        let Acceptance::New(receipt) = store.accept_document(d.clone()).await.unwrap() else { panic!("new") };
        assert_eq!(receipt.consignment_state, ConsignmentState::Submitted);
        let pending = store.pending_deliveries(10, now_millis()).await.unwrap();
        assert_eq!(pending.len(), 2);
        store.mark_dispatched(pending.iter().map(|p| p.delivery_id).collect(), now_millis()).await.unwrap();
        assert!(store.pending_deliveries(10, now_millis()).await.unwrap().is_empty());

        let a = store.apply_acknowledgment(ack(d.id, "br-customs", AckStatus::Released)).await.unwrap();
        assert_eq!(a.consignment_state, ConsignmentState::InReview);
        let again = store.apply_acknowledgment(ack(d.id, "br-customs", AckStatus::Released)).await.unwrap();
        assert_eq!(again.outcome, AckOutcome::Duplicate);
        let b = store.apply_acknowledgment(ack(d.id, "br-sanitary", AckStatus::Released)).await.unwrap();
        assert_eq!(b.consignment_state, ConsignmentState::Released);

        let view = store.consignment(d.ucr.clone()).await.unwrap().unwrap();
        assert_eq!(view.state, ConsignmentState::Released);
        assert!(view.time_release.submission_to_release_ms.is_some());
        assert_eq!(view.documents[0].deliveries[0].history.len(), 4, "pending, dispatched, released, duplicate");
        let states: Vec<String> = store
            .pending_status_events(10)
            .await
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["state"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(states, vec!["submitted", "in_review", "released"]);
    }

    #[tokio::test]
    async fn acknowledgments_for_unknown_or_unrouted_documents_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let d = doc("UCR-2", &["br-customs"]);
        store.accept_document(d.clone()).await.unwrap();
        let unknown = store.apply_acknowledgment(ack(Uuid::now_v7(), "br-customs", AckStatus::Accepted)).await;
        assert!(matches!(unknown, Err(StoreError::UnknownDocument(_))));
        let foreign = store.apply_acknowledgment(ack(d.id, "uy-customs", AckStatus::Accepted)).await;
        assert!(matches!(foreign, Err(StoreError::NotRouted { .. })));
        let view = store.consignment(d.ucr.clone()).await.unwrap().unwrap();
        assert_eq!(view.documents[0].deliveries[0].history.len(), 1);
        assert_eq!(view.state, ConsignmentState::Submitted);
    }

    #[tokio::test]
    async fn a_repeated_document_gets_its_first_receipt_and_a_different_one_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut first = doc("UCR-3", &["br-customs"]);
        first.idempotency_key = Some("key-1".into());
        let Acceptance::New(receipt) = store.accept_document(first.clone()).await.unwrap() else { panic!("new") };

        // Same key, same body, new id: the first receipt, nothing written.
        let mut again = first.clone();
        again.id = Uuid::now_v7();
        match store.accept_document(again.clone()).await.unwrap() {
            Acceptance::Replayed(r) => assert_eq!(r["documentId"], receipt.document_id.to_string()),
            other => panic!("expected a replay, got {other:?}"),
        }
        // Same key, different body: conflict.
        again.body_sha256 = "other".into();
        assert!(matches!(store.accept_document(again.clone()).await, Err(StoreError::Conflict { .. })));
        // No key, same identity and body: the first receipt; different body: conflict.
        let mut nokey = first.clone();
        nokey.id = Uuid::now_v7();
        nokey.idempotency_key = None;
        assert!(matches!(store.accept_document(nokey.clone()).await.unwrap(), Acceptance::Replayed(_)));
        nokey.body_sha256 = "amended".into();
        assert!(matches!(store.accept_document(nokey).await, Err(StoreError::Conflict { .. })));
        assert_eq!(store.pending_deliveries(10, now_millis()).await.unwrap().len(), 1, "one document, one delivery");
    }

    #[tokio::test]
    async fn a_receipt_kept_the_earlier_way_is_still_answered_to_a_resend() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = doc("UCR-OLD", &["br-customs"]);
        first.idempotency_key = Some("key-old".into());
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            let Acceptance::New(_) = store.accept_document(first.clone()).await.unwrap() else { panic!("new") };
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
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut again = first.clone();
        again.id = Uuid::now_v7();
        match store.accept_document(again.clone()).await.unwrap() {
            Acceptance::Replayed(r) => assert_eq!(r["documentId"], first.id.to_string()),
            other => panic!("expected the first receipt, got {other:?}"),
        }
        again.body_sha256 = "different".into();
        assert!(matches!(store.accept_document(again).await, Err(StoreError::Conflict { .. })));
    }

    #[tokio::test]
    async fn a_batch_commits_in_order_and_a_refused_document_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut foreign = doc("UCR-B0", &["br-customs"]);
        foreign.sender = "another-trader".into();
        store.accept_document(foreign).await.unwrap();
        let first = doc("UCR-B1", &["br-customs", "ar-customs"]);
        let mut taken = doc("UCR-B0", &["br-customs"]);
        taken.sender = "demo-trader".into();
        let results = store
            .accept_documents(vec![first.clone(), taken, doc("UCR-B2", &["br-customs"]), first.clone()])
            .await
            .unwrap();
        assert!(matches!(&results[0], Ok(Acceptance::New(r)) if r.document_id == first.id && r.deliveries.len() == 2));
        assert!(matches!(&results[1], Err(StoreError::ConsignmentOfAnother(u)) if u.as_str() == "UCR-B0"), "{:?}", results[1]);
        assert!(matches!(&results[2], Ok(Acceptance::New(_))));
        // The repeat, in the same commit, is answered with the first receipt.
        assert!(matches!(&results[3], Ok(Acceptance::Replayed(r)) if r["documentId"] == first.id.to_string()));
        // The refused document left nothing; the others' deliveries are in the outbox, in order.
        let pending = store.pending_deliveries(100, now_millis()).await.unwrap();
        let ucrs: Vec<&str> = pending.iter().map(|d| d.ucr.as_str()).collect();
        assert_eq!(ucrs, ["UCR-B0", "UCR-B1", "UCR-B1", "UCR-B2"]);
        let opened = store.consignment(Ucr::parse("UCR-B2").unwrap()).await.unwrap().unwrap();
        assert_eq!(opened.state, ConsignmentState::Submitted);
        assert_eq!(store.pending_status_events(100).await.unwrap().len(), 3, "one status event per opened consignment");
    }

    #[tokio::test]
    async fn a_document_failing_part_way_leaves_nothing_and_spoils_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // Two deliveries to one agency break a constraint after the consignment, the document
        // and the first delivery are written: not a refusal, so the whole commit is undone.
        let broken = doc("UCR-P1", &["br-customs", "br-customs"]);
        let e = store.accept_document(broken.clone()).await.unwrap_err();
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
        let good = doc("UCR-P2", &["br-customs"]);
        let e = store.accept_documents(vec![good.clone(), broken]).await.unwrap_err();
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
        for ucr in ["UCR-P1", "UCR-P2"] {
            assert!(store.consignment(Ucr::parse(ucr).unwrap()).await.unwrap().is_none(), "{ucr} was not committed");
        }
        assert!(store.pending_deliveries(10, now_millis()).await.unwrap().is_empty());
        // The store goes on: the good document alone is committed.
        assert!(matches!(store.accept_document(good).await, Ok(Acceptance::New(_))));
        let audit: i64 = store.reader.lock().unwrap().query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).unwrap();
        assert_eq!(audit, 1, "only the committed document is audited");
    }

    #[tokio::test]
    async fn concurrent_submissions_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.accept_document(doc(&format!("UCR-C{i}"), &["br-customs"])).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.pending_deliveries(1000, now_millis()).await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn a_refused_delivery_waits_holds_back_its_ucr_fails_and_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let first = doc("UCR-R", &["br-customs"]);
        let mut second = doc("UCR-R", &["br-customs"]);
        second.document_type = DocumentType::parse("packingList").unwrap();
        let other = doc("UCR-S", &["br-customs"]);
        for d in [&first, &second, &other] {
            store.accept_document(d.clone()).await.unwrap();
        }
        let now = now_millis();
        let all = store.pending_deliveries(10, now).await.unwrap();
        assert_eq!(all.len(), 3);
        let refused = all[0].delivery_id;
        assert_eq!(store.outbox_backlog().await.unwrap(), 3);

        // Refused once, due again in a minute: it and the later record of its UCR wait;
        // the other consignment goes on.
        store.record_refusal(refused, now, "too large".into(), now + 60_000).await.unwrap();
        let due = store.pending_deliveries(10, now).await.unwrap();
        assert_eq!(due.iter().map(|d| d.ucr.as_str()).collect::<Vec<_>>(), vec!["UCR-S"]);
        let later = store.pending_deliveries(10, now + 60_000).await.unwrap();
        assert_eq!(later.len(), 3, "due again after the delay, still first");
        assert_eq!(later[0].delivery_id, refused);
        assert_eq!(later[0].attempts, 1);

        // The last attempt: failed, out of the outbox, and the consignment says so.
        store.mark_failed(refused, now + 60_000, "too large".into()).await.unwrap();
        assert_eq!(store.outbox_backlog().await.unwrap(), 2);
        let due = store.pending_deliveries(10, now + 120_000).await.unwrap();
        assert_eq!(due.iter().map(|d| d.ucr.as_str()).collect::<Vec<_>>(), vec!["UCR-S"], "the failed one holds back its UCR");
        let failed = store.failed_deliveries(None).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].delivery_id, failed[0].attempts), (refused, 2));
        assert!(store.failed_deliveries(Some(AgencyId::parse("ar-customs").unwrap())).await.unwrap().is_empty());
        let view = store.consignment(first.ucr.clone()).await.unwrap().unwrap();
        assert_eq!(view.state, ConsignmentState::DeliveryFailed);
        assert_eq!(view.documents[0].deliveries[0].status, DeliveryStatus::Failed);
        assert_eq!(view.documents[0].deliveries[0].last_error.as_deref(), Some("too large"));

        // An operator sends it again: back in the outbox with fresh attempts.
        let out = store
            .retry_deliveries(RetrySelection::Deliveries(vec![refused, all[2].delivery_id, 999]), "ops".into(), now)
            .await
            .unwrap();
        assert_eq!((out.retried, out.not_failed, out.unknown), (vec![refused], vec![all[2].delivery_id], vec![999]));
        let view = store.consignment(first.ucr.clone()).await.unwrap().unwrap();
        assert_eq!(view.state, ConsignmentState::Submitted);
        let d = &view.documents[0].deliveries[0];
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
        assert_eq!(d.history.last().unwrap().reason.as_deref(), Some("sent again by ops"));
        assert_eq!(store.pending_deliveries(10, now).await.unwrap().len(), 3);
        assert!(store.failed_deliveries(None).await.unwrap().is_empty());
    }
}
