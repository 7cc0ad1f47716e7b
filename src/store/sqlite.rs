//! The embedded store: one SQLite file in WAL mode under the data directory, and the SQL of
//! every [`Ledger`] operation.
//!
//! Writes go through one writer thread with group commit (`writer.rs`); reads through one
//! reader connection, `query_only`. A checkpointer thread of its own copies the log (WAL) into
//! the database file ([`checkpoint_every`]): the writer's commits never wait for a checkpoint.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::writer::{Transactional, Writer};
use super::*;
use crate::audit::{ChainBreak, LogSummary};

/// The name of the embedded store's one audit chain.
const ONE_CHAIN: &str = "gateway";
use crate::clock::rfc3339;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

/// The SQLite store, shared behind an `Arc`: one writer thread (group commit), one reader connection.
pub struct SqliteStore {
    writer: Writer,
    reader: Arc<Mutex<SqliteLedger>>,
    /// Dropped with the store, which stops the checkpointer thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// How often the checkpointer copies what was committed into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// The log file's size kept after a checkpoint emptied it (`PRAGMA journal_size_limit`).
const LOG_BYTES_KEPT: u64 = 64 << 20;
/// Pages of log (64 MiB) past which the writer checkpoints itself after a commit. The log
/// starts over only once a checkpoint has copied all of it, and under steady writes the
/// checkpointer's passive checkpoints stay a few commits behind: without this, a busy gateway's
/// log would grow as long as the writes go on. The writer's own checkpoint finds most of the
/// log already copied.
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// Runs a passive checkpoint on `conn` every [`CHECKPOINT_EVERY`] until `stop`'s sender is
/// dropped. A passive checkpoint copies the frames no reader needs and waits for no one, and
/// the writer appends meanwhile: the log restarts from its beginning once a checkpoint caught
/// up. (Left to SQLite, the writer checkpoints inside a commit every 1,000 pages, and the
/// documents of that group wait for it: the tail of the latency. The writer still does past
/// [`WRITER_CHECKPOINT_PAGES`], so that the log starts over under steady writes.)
fn checkpoint_every(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "store: a checkpoint failed; the log keeps what was committed and the next one tries again");
        }
    }
}


/// The embedded store's versioned migrations (`migrations/sqlite/`), run at start.
mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Brings a store up to date: stores from before the retry columns get them first (the
/// versioned migrations start from the schema that has them), then every versioned migration
/// not yet applied runs, each recorded in `refinery_schema_history`.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('deliveries')")?;
    let columns = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    drop(stmt);
    if !columns.is_empty() {
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
    }
    // A migration that builds a table again (V5) does so with foreign keys off, as SQLite's
    // procedure for changing a table asks (they cannot be switched inside a transaction), and
    // every key is checked once it is done.
    conn.execute_batch("PRAGMA foreign_keys=OFF")?;
    let ran = embedded::migrations::runner()
        .run(conn)
        .map_err(|e| StoreError::Unavailable(format!("the store's migrations failed: {e}")));
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    if ran?.applied_migrations().is_empty() {
        return Ok(());
    }
    let broken: Option<String> = conn.row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |r| r.get(0)).optional()?;
    if let Some(table) = broken {
        return Err(StoreError::Corrupt(format!("after the migrations, a row of {table} refers to a row that does not exist")));
    }
    Ok(())
}

/// How much of the database file each connection maps (`PRAGMA mmap_size`).
const MMAP_BYTES: u64 = 4 << 30;

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // temp_store=MEMORY keeps each job's savepoint journal in memory rather than in a temporary
    // file (it only undoes a job inside the open transaction; durability is the WAL's).
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;")?;
    // The database file is read through a memory map, not copied page by page with `pread`:
    // a reader's page cache is emptied whenever the writer commits (WAL), so without a map
    // every read after a commit goes back to the kernel. The map is address space, not memory:
    // the kernel's page cache backs it, and a file larger than the map is read as before.
    conn.execute_batch(&format!("PRAGMA mmap_size={MMAP_BYTES}"))?;
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
        Self::open_file(&data_dir.join("ventanilla.db"))
    }

    /// Opens (creating if needed, with its directory) the store in the file `path`.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_dir::create(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create the data directory {}: {e}", dir.display())))?;
        }
        let path = path.to_owned();
        let mut conn = open(&path)?;
        // The writer's page cache holds a large group's pages without spilling them to the
        // log before the commit (the default is 2 MiB).
        conn.execute_batch("PRAGMA cache_size=-8192")?;
        migrate(&mut conn)?;
        // The checkpointer's thread checkpoints; the writer's commits only past a long log.
        conn.execute_batch(&format!("PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}; PRAGMA journal_size_limit={LOG_BYTES_KEPT}"))?;
        let reader = open(&path)?;
        // Read work cannot write, whatever it asks.
        reader.execute_batch("PRAGMA query_only=ON")?;
        let checkpointer = open(&path)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store-checkpointer".into())
            .spawn(move || checkpoint_every(checkpointer, stopped))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer thread: {e}")))?;
        let writer = Writer::start("store-writer", SqliteLedger { conn })?;
        Ok(SqliteStore { writer, reader: Arc::new(Mutex::new(SqliteLedger { conn: reader })), _checkpointer: stop })
    }

    /// Opens the store of an existing data directory (for the command-line tools): a mistyped
    /// directory is an error, not a new empty store.
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        existing_store(data_dir)?;
        Self::open(data_dir)
    }

    /// Opens the store in the existing file `path` (for the command-line tools).
    pub fn open_existing_file(path: &Path) -> Result<Self, StoreError> {
        existing_file(path)?;
        Self::open_file(path)
    }

    /// Runs a read on the reader connection, off the async threads.
    async fn read_job(&self, work: Work) -> Result<Decided, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let mut ledger = reader.lock().map_err(|_| StoreError::Unavailable("reader poisoned".into()))?;
            work(&mut *ledger)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
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

/// Verifies the audit log of the store in the file `path`, opened read-only (checking writes
/// nothing), looking for `expected` hashes too.
pub fn verify_audit_of_file(
    path: &Path,
    expected: &[String],
) -> Result<Result<(LogSummary, Vec<String>), ChainBreak>, StoreError> {
    existing_file(path)?;
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let records = SqliteLedger { conn }.audit_records()?;
    Ok(crate::audit::verify_expecting(records, expected))
}

/// The store file of `data_dir`, which must exist (the command-line tools: a mistyped
/// directory is an error, not a new empty store).
fn existing_store(data_dir: &Path) -> Result<std::path::PathBuf, StoreError> {
    let path = data_dir.join("ventanilla.db");
    existing_file(&path)?;
    Ok(path)
}

fn existing_file(path: &Path) -> Result<(), StoreError> {
    if !path.is_file() {
        return Err(StoreError::Unavailable(format!(
            "no store at {}: give the gateway's --data-dir (VENTANILLA_DATA_DIR) or --store (VENTANILLA_STORE)",
            path.display()
        )));
    }
    Ok(())
}

/// The columns of an outbound delivery, as selected by the outbox and stream queries.
type OutboundRow = (i64, String, String, String, String, String, String, String, String, String, String, i64, String, u32, Versions);
/// A document's version and the one it amends; a notice's id, kind and time; the delivery's
/// selection.
type Versions = (i64, Option<String>, Option<String>, Option<String>, Option<i64>, Option<String>);

/// What the outbox and stream queries select: [`OutboundRow`]'s columns, notices joined.
const OUTBOUND_COLUMNS: &str = "d.id, d.document_id, d.agency, d.topic, doc.ucr, doc.document_type, doc.schema_version, doc.schema_id,
    doc.origin, doc.destination, doc.sender, doc.submitted_at, COALESCE(n.body, doc.payload), d.attempts,
    doc.version, doc.amends, n.id, n.kind, n.created_at, d.selection
    FROM deliveries d JOIN documents doc ON doc.id = d.document_id LEFT JOIN notices n ON n.id = d.notice_id";

fn outbound_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboundRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?,
        r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?, (r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?, r.get(18)?, r.get(19)?)))
}

fn outbound(r: OutboundRow) -> Result<OutboundDelivery, StoreError> {
    let (version, amends, notice_id, notice_kind, notice_at, selection) = r.14;
    let notice = match (notice_id, notice_kind, notice_at) {
        (Some(id), Some(kind), Some(at)) => Some(OutboundNotice { id: parse_uuid(&id)?, kind: NoticeKind::parse(&kind)?, at }),
        _ => None,
    };
    Ok(OutboundDelivery {
        version,
        amends: amends.as_deref().map(parse_uuid).transpose()?,
        notice,
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
        // One writer: ids are taken in commit order.
        position: r.0,
        selection,
    })
}

/// The columns of a [`DocumentRecord`], in [`DocumentRow`]'s order.
const DOCUMENT_COLUMNS: &str = "id, document_type, schema_version, origin, destination, sender, submitted_at, version, amends, \
     superseded_by, withdrawn_at, transport_mode, hs_chapter, border_post, chain";
type DocumentRow = (String, String, String, String, String, String, i64, i64, Option<String>, Option<String>, Option<i64>, DocumentDims, String);

fn document_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentRow> {
    let dims = DocumentDims { transport_mode: r.get(11)?, hs_chapter: r.get(12)?, border_post: r.get(13)? };
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, dims, r.get(14)?))
}

fn document_record(r: DocumentRow) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        id: parse_uuid(&r.0)?,
        document_type: parse_type(&r.1)?,
        schema_version: r.2,
        origin: r.3,
        destination: r.4,
        sender: r.5,
        submitted_at: r.6,
        version: r.7,
        amends: r.8.as_deref().map(parse_uuid).transpose()?,
        superseded_by: r.9.as_deref().map(parse_uuid).transpose()?,
        withdrawn_at: r.10,
        dims: r.11,
        chain: parse_uuid(&r.12)?,
    })
}

/// The columns of a [`ConsignmentReleaseTimes`] (`c.`), in [`consignment_times`]' order.
const RELEASE_COLUMNS: &str = "c.ucr, c.owner, c.lodged_at, c.arrived_at, c.released_at, c.decided_at, c.outcome, c.document_type, \
     c.origin, c.destination, c.transport_mode, c.hs_chapter, c.border_post, c.channel, c.hold_ms, c.query_trader_ms, c.query_agency_ms, c.risk_channel, \
     c.documents, c.amendments, c.queries, c.resubmissions";

/// The columns of an [`AgencyReleaseTimes`] (`a.`), in [`agency_times`]' order.
const AGENCY_COLUMNS: &str = "a.agency, a.routed_at, a.first_answer_at, a.decided_at, a.decision, a.hold_ms, a.query_trader_ms, \
     a.query_agency_ms, a.selected_channel, a.selected_by, a.finding, a.standing_instruction";

/// Where an agency's columns start after [`RELEASE_COLUMNS`].
const AGENCY_AFTER_RELEASE: usize = 22;

/// Column `i` as text, parsed (a stored value that does not parse is a conversion error).
fn parsed<T>(r: &rusqlite::Row<'_>, i: usize, parse: fn(&str) -> Result<T, crate::domain::ParseError>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn consignment_times(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsignmentReleaseTimes> {
    Ok(ConsignmentReleaseTimes {
            ucr: parsed(r, 0, Ucr::parse)?,
            owner: r.get(1)?,
            lodged_at: r.get(2)?,
            arrived_at: r.get(3)?,
            released_at: r.get(4)?,
            decided_at: r.get(5)?,
            outcome: r.get(6)?,
            document_type: r.get(7)?,
            origin: r.get(8)?,
            destination: r.get(9)?,
            dims: DocumentDims { transport_mode: r.get(10)?, hs_chapter: r.get(11)?, border_post: r.get(12)? },
            channel: r.get(13)?,
            hold_ms: r.get(14)?,
            query_trader_ms: r.get(15)?,
            query_agency_ms: r.get(16)?,
            risk_channel: r.get(17)?,
            formalities: crate::store::Formalities::from_columns(r.get(18)?, r.get(19)?, r.get(20)?, r.get(21)?),
    })
}

/// A finding as `SELECT delivery_id, at, finding, facts` reads it.
fn finding_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FindingRecord> {
    Ok(FindingRecord { delivery_id: r.get(0)?, at: r.get(1)?, irregular: r.get::<_, String>(2)? == "irregularity", facts: r.get(3)? })
}

fn agency_times(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<AgencyReleaseTimes> {
    Ok(AgencyReleaseTimes {
            agency: parsed(r, from, AgencyId::parse)?,
            routed_at: r.get(from + 1)?,
            first_answer_at: r.get(from + 2)?,
            decided_at: r.get(from + 3)?,
            decision: r.get(from + 4)?,
            hold_ms: r.get(from + 5)?,
            query_trader_ms: r.get(from + 6)?,
            query_agency_ms: r.get(from + 7)?,
            selectivity: crate::store::AgencySelectivity::from_columns(r.get(from + 8)?, r.get(from + 9)?, r.get(from + 10)?, r.get(from + 11)?)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(from + 8, rusqlite::types::Type::Text, e.into()))?,
    })
}

/// A consignment's document histories, from the index alone (SQLite's bare columns: `id` is the
/// row of `MAX(version)`).
const CHAINS: &str = "SELECT chain, id, MAX(version), COUNT(*) FROM documents INDEXED BY documents_by_chain
     WHERE ucr = ?1 GROUP BY chain ORDER BY chain";
/// Where a page of a history's versions is read from (after `SELECT` and the columns).
const CHAIN_VERSIONS: &str = "FROM documents WHERE ucr = ?1 AND chain = ?2 AND version < ?3 ORDER BY version DESC LIMIT ?4";
/// A sender's documents of one type in a consignment, counted in the index.
const IDENTITY_VERSIONS: &str = "SELECT COUNT(*) FROM documents WHERE sender = ?1 AND ucr = ?2 AND document_type = ?3";

fn earlier(row: Option<(String, String, String)>) -> Result<Option<EarlierDocument>, StoreError> {
    row.map(|(id, body_sha256, receipt)| Ok(EarlierDocument { id: parse_uuid(&id)?, body_sha256, receipt })).transpose()
}

/// The rows, on one connection: the writer's (in its group commit) or the reader's
/// (`PRAGMA query_only`, so read work cannot write).
pub struct SqliteLedger {
    conn: Connection,
}

impl Transactional for SqliteLedger {
    fn run(&mut self, statement: &str) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(statement)?)
    }
    fn begin(&mut self, _subjects: &[Subject], _lookups: &[AcceptanceLookup]) -> Result<(), StoreError> {
        // One writer: every group is already alone.
        self.run("BEGIN IMMEDIATE")
    }
    fn mark(&mut self) -> Result<(), StoreError> {
        // Prepared once: a job's savepoint costs no parsing.
        self.conn.exec("SAVEPOINT job", [])?;
        Ok(())
    }
    fn keep(&mut self) -> Result<(), StoreError> {
        self.conn.exec("RELEASE SAVEPOINT job", [])?;
        Ok(())
    }
    fn undo(&mut self) -> Result<(), StoreError> {
        self.conn.exec("ROLLBACK TO SAVEPOINT job", [])?;
        self.conn.exec("RELEASE SAVEPOINT job", [])?;
        Ok(())
    }
    fn transaction_ended(&self) -> bool {
        // SQLite ends the transaction itself on an I/O error or a full disk.
        self.conn.is_autocommit()
    }
    fn ledger(&mut self) -> &mut dyn Ledger {
        self
    }
}

impl Consignments for SqliteLedger {
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
                       AND NOT EXISTS (SELECT 1 FROM documents w WHERE w.ucr = d.ucr AND w.chain = d.chain AND w.withdrawn_at IS NOT NULL)
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

    // One writer: the rule's check of `consignment_of_another` cannot race, so the opener is not kept.
    fn open_consignment(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis, _opened_by: &str) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "INSERT OR IGNORE INTO consignments (ucr, state, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![ucr.as_str(), state.as_str(), at],
        )? == 1)
    }

    fn insert_document(&mut self, doc: &NewDocument) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO documents (id, ucr, document_type, schema_version, schema_id, origin, destination, sender, payload,
                                    submitted_at, idempotency_key, body_sha256, receipt, version, amends,
                                    transport_mode, hs_chapter, border_post, chain)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, '', ?13, ?14, ?15, ?16, ?17,
                     COALESCE((SELECT chain FROM documents WHERE id = ?14), ?1))",
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
                doc.body_sha256,
                doc.version,
                doc.amends.map(|a| a.to_string()),
                doc.dims.transport_mode,
                doc.dims.hs_chapter,
                doc.dims.border_post
            ],
        )?;
        Ok(())
    }

    fn insert_delivery(&mut self, document_id: Uuid, d: &PlannedDelivery, at: Millis) -> Result<i64, StoreError> {
        self.conn.exec(
            "INSERT INTO deliveries (document_id, agency, topic, rule, status, created_at, selection) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
            params![document_id.to_string(), d.agency.as_str(), d.topic, d.rule, at, d.selection],
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
            "SELECT d.status FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE doc.ucr = ?1 AND d.notice_id IS NULL AND doc.superseded_by IS NULL AND doc.withdrawn_at IS NULL",
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
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE ucr = ?1 ORDER BY submitted_at, id"),
        )?;
        let rows = stmt.query_map([ucr.as_str()], document_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(document_record).collect()
    }

    fn document_chains(&mut self, ucr: &Ucr) -> Result<Vec<DocumentChain>, StoreError> {
        // The row of MAX(version) gives `id` (SQLite's bare columns); every column is in the index.
        let mut stmt = self.conn.prepare_cached(CHAINS)?;
        let rows = stmt
            .query_map([ucr.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(chain, latest, latest_version, versions)| {
                Ok(DocumentChain { chain: parse_uuid(&chain)?, latest: parse_uuid(&latest)?, latest_version, versions })
            })
            .collect()
    }

    fn chain_versions(&mut self, ucr: &Ucr, chain: Uuid, below: i64, limit: usize) -> Result<Vec<DocumentRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {DOCUMENT_COLUMNS} {CHAIN_VERSIONS}"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![ucr.as_str(), chain.to_string(), below, limit], document_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(document_record).collect()
    }

    fn identity_versions(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType) -> Result<u64, StoreError> {
        let n: i64 = self.conn.row(
            IDENTITY_VERSIONS,
            params![sender, ucr.as_str(), document_type.as_str()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn agency_first_times(&mut self, ucr: &Ucr) -> Result<Vec<(AgencyId, Millis, Option<Millis>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.agency, MIN(d.created_at), MIN(d.first_answer_at) FROM documents doc
             JOIN deliveries d ON d.document_id = doc.id AND d.notice_id IS NULL
             WHERE doc.ucr = ?1 GROUP BY d.agency ORDER BY MIN(d.id)",
        )?;
        let rows = stmt
            .query_map([ucr.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(agency, routed, answered)| Ok((parse_agency(&agency)?, routed, answered))).collect()
    }

    fn document(&mut self, id: Uuid) -> Result<Option<StoredDocument>, StoreError> {
        let row = self
            .conn
            .row(
                &format!("SELECT {DOCUMENT_COLUMNS}, ucr, payload, body_sha256 FROM documents WHERE id = ?1"),
                [id.to_string()],
                |r| Ok((document_row(r)?, r.get::<_, String>(15)?, r.get::<_, String>(16)?, r.get::<_, String>(17)?)),
            )
            .optional()?;
        row.map(|(record, ucr, payload, body_sha256)| {
            Ok(StoredDocument { record: document_record(record)?, ucr: parse_ucr(&ucr)?, payload, body_sha256 })
        })
        .transpose()
    }

    fn receipt_of(&mut self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .row(
                "SELECT COALESCE(r.receipt, d.receipt) FROM documents d LEFT JOIN receipts r ON r.document_id = d.id WHERE d.id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn supersede(&mut self, old: Uuid, new: Uuid) -> Result<(), StoreError> {
        self.conn.exec("UPDATE documents SET superseded_by = ?2 WHERE id = ?1", params![old.to_string(), new.to_string()])?;
        Ok(())
    }

    fn withdraw_document(&mut self, id: Uuid, at: Millis) -> Result<(), StoreError> {
        self.conn.exec("UPDATE documents SET withdrawn_at = ?2 WHERE id = ?1", params![id.to_string(), at])?;
        Ok(())
    }

    fn current_documents(&mut self, ucr: &Ucr) -> Result<u64, StoreError> {
        let n: i64 = self.conn.row(
            "SELECT COUNT(*) FROM documents WHERE ucr = ?1 AND superseded_by IS NULL AND withdrawn_at IS NULL",
            [ucr.as_str()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn insert_notice(&mut self, id: Uuid, document_id: Uuid, kind: NoticeKind, body: &str, at: Millis) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT INTO notices (id, document_id, kind, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.to_string(), document_id.to_string(), kind.as_str(), body, at],
        )?;
        Ok(())
    }

    fn insert_notice_delivery(&mut self, notice_id: Uuid, document_id: Uuid, agency: &AgencyId, topic: &str, at: Millis)
        -> Result<i64, StoreError> {
        self.conn.exec(
            "INSERT INTO deliveries (document_id, agency, topic, rule, status, created_at, notice_id)
             VALUES (?1, ?2, ?3, 'notice', 'pending', ?4, ?5)",
            params![document_id.to_string(), agency.as_str(), topic, at, notice_id.to_string()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn deliveries_of(&mut self, document_id: Uuid) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.agency, d.topic, d.status, d.created_at, d.dispatched_at, d.first_answer_at, d.attempts, d.last_error,
                    d.selection, i.performed, i.finding, i.revenue, i.code
             FROM deliveries d LEFT JOIN inspections i ON i.delivery_id = d.id
             WHERE d.document_id = ?1 AND d.notice_id IS NULL ORDER BY d.id",
        )?;
        let rows = stmt
            .query_map([document_id.to_string()], |r| {
                let inspection = r.get::<_, Option<bool>>(10)?.map(|performed| -> rusqlite::Result<_> {
                    Ok((performed, r.get::<_, Option<String>>(11)?, r.get::<_, Option<f64>>(12)?, r.get::<_, Option<String>>(13)?))
                });
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?, r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?,
                    r.get::<_, u32>(7)?, r.get::<_, Option<String>>(8)?, (r.get::<_, Option<String>>(9)?, inspection.transpose()?)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, agency, topic, status, routed_at, dispatched_at, first_answer_at, attempts, last_error, (selection, inspection))| {
                let inspection = inspection
                    .map(|(performed, finding, revenue, code)| -> Result<Inspection, StoreError> {
                        Ok(Inspection { performed, finding: finding.as_deref().map(Finding::parse).transpose().map_err(StoreError::Corrupt)?, revenue, code })
                    })
                    .transpose()?;
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
                    selection,
                    inspection,
                })
            })
            .collect()
    }

    fn history_of(&mut self, delivery_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        // The delivery's rule and creation time first (order 0), then its stored entries.
        let mut stmt = self.conn.prepare_cached(
            "SELECT NULL, created_at, NULL, rule, NULL, 0 FROM deliveries WHERE id = ?1 AND notice_id IS NULL
             UNION ALL
             SELECT status, at, source, reason, outcome, id FROM delivery_events WHERE delivery_id = ?1
             ORDER BY 6",
        )?;
        let mut routing = None;
        let mut stored = Vec::new();
        let mut rows = stmt.query([delivery_id])?;
        while let Some(r) = rows.next()? {
            let at_ms: i64 = r.get(1)?;
            if r.get::<_, i64>(5)? == 0 {
                routing = Some((r.get::<_, String>(3)?, at_ms));
                continue;
            }
            stored.push(HistoryEntry { status: r.get(0)?, at: rfc3339(at_ms), at_ms, source: r.get(2)?, reason: r.get(3)?, outcome: r.get(4)? });
        }
        Ok(HistoryEntry::history(routing.as_ref().map(|(rule, at)| (rule.as_str(), *at)), stored))
    }
}

impl IndicatorFacts for SqliteLedger {
    fn save_release_times(&mut self, c: &ConsignmentReleaseTimes, agencies: &[AgencyReleaseTimes]) -> Result<(), StoreError> {
        let f = c.formalities;
        self.conn.exec(
            "INSERT OR REPLACE INTO release_times (ucr, owner, lodged_at, arrived_at, released_at, decided_at, outcome, document_type,
                 origin, destination, transport_mode, hs_chapter, border_post, channel, hold_ms, query_trader_ms, query_agency_ms,
                 risk_channel, documents, amendments, queries, resubmissions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
            params![
                c.ucr.as_str(), c.owner, c.lodged_at, c.arrived_at, c.released_at, c.decided_at, c.outcome, c.document_type,
                c.origin, c.destination, c.dims.transport_mode, c.dims.hs_chapter, c.dims.border_post, c.channel, c.hold_ms,
                c.query_trader_ms, c.query_agency_ms, c.risk_channel, f.map(|f| f.documents), f.map(|f| f.amendments),
                f.map(|f| f.queries), f.map(|f| f.resubmissions)
            ],
        )?;
        self.conn.exec("DELETE FROM agency_release_times WHERE ucr = ?1", [c.ucr.as_str()])?;
        self.conn.exec("INSERT INTO release_time_changes (ucr) VALUES (?1)", [c.ucr.as_str()])?;
        for a in agencies {
            self.conn.exec(
                "INSERT INTO agency_release_times (ucr, agency, lodged_at, routed_at, first_answer_at, decided_at, decision, hold_ms,
                     query_trader_ms, query_agency_ms, selected_channel, selected_by, finding, standing_instruction)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    c.ucr.as_str(), a.agency.as_str(), c.lodged_at, a.routed_at, a.first_answer_at, a.decided_at, a.decision,
                    a.hold_ms, a.query_trader_ms, a.query_agency_ms, a.selectivity.map(|s| s.channel),
                    a.selectivity.map(|s| s.source), a.selectivity.and_then(|s| s.finding),
                    a.selectivity.map(|s| s.standing_instruction)
                ],
            )?;
        }
        Ok(())
    }

    fn release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<ConsignmentReleaseTimes>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RELEASE_COLUMNS} FROM release_times c
             WHERE c.lodged_at >= ?1 AND c.lodged_at < ?2 AND (?3 IS NULL OR c.owner = ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM agency_release_times a WHERE a.ucr = c.ucr AND a.agency = ?4))
             ORDER BY c.lodged_at, c.ucr"
        ))?;
        let rows = stmt
            .query_map(params![q.from, q.to, q.owner, q.agency.as_ref().map(|a| a.as_str())], consignment_times)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn agency_release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<(ConsignmentReleaseTimes, AgencyReleaseTimes)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RELEASE_COLUMNS}, {AGENCY_COLUMNS}
             FROM agency_release_times a JOIN release_times c ON c.ucr = a.ucr
             WHERE a.lodged_at >= ?1 AND a.lodged_at < ?2 AND (?3 IS NULL OR c.owner = ?3) AND (?4 IS NULL OR a.agency = ?4)
             ORDER BY a.lodged_at, a.ucr, a.agency"
        ))?;
        let rows = stmt
            .query_map(params![q.from, q.to, q.owner, q.agency.as_ref().map(|a| a.as_str())], |r| {
                Ok((consignment_times(r)?, agency_times(r, AGENCY_AFTER_RELEASE)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn release_time_changes_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Ucr)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ucr FROM release_time_changes WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |r| Ok((r.get(0)?, parsed(r, 1, Ucr::parse)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn consignments_without_release_times(&mut self, after: &str, limit: usize) -> Result<Vec<Ucr>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.ucr FROM consignments c LEFT JOIN release_times r ON r.ucr = c.ucr
             WHERE c.ucr > ?1 AND (r.ucr IS NULL OR r.documents IS NULL
                 OR EXISTS (SELECT 1 FROM agency_release_times a WHERE a.ucr = c.ucr AND a.selected_channel IS NULL))
             ORDER BY c.ucr LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| parsed(r, 0, Ucr::parse))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn latest_release_time_change(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.row("SELECT COALESCE(MAX(id), 0) FROM release_time_changes", [], |r| r.get(0))?)
    }

    fn release_times_of(&mut self, ucrs: Option<&[Ucr]>) -> Result<ReleaseTimeFacts, StoreError> {
        let agency_row = |r: &rusqlite::Row<'_>| Ok((parsed(r, 0, Ucr::parse)?, agency_times(r, 1)?));
        let (mut consignments, mut agencies) = (Vec::new(), Vec::new());
        match ucrs {
            None => {
                let mut stmt = self.conn.prepare(&format!("SELECT {RELEASE_COLUMNS} FROM release_times c"))?;
                consignments = stmt.query_map([], consignment_times)?.collect::<Result<Vec<_>, _>>()?;
                let mut stmt = self.conn.prepare(&format!("SELECT a.ucr, {AGENCY_COLUMNS} FROM agency_release_times a"))?;
                agencies = stmt.query_map([], agency_row)?.collect::<Result<Vec<_>, _>>()?;
            }
            Some(ucrs) => {
                // In chunks, within SQLite's bound on parameters.
                for chunk in ucrs.chunks(500) {
                    let marks = vec!["?"; chunk.len()].join(",");
                    let keys = rusqlite::params_from_iter(chunk.iter().map(|u| u.as_str()));
                    let mut stmt = self.conn.prepare(&format!("SELECT {RELEASE_COLUMNS} FROM release_times c WHERE c.ucr IN ({marks})"))?;
                    consignments.extend(stmt.query_map(keys, consignment_times)?.collect::<Result<Vec<_>, _>>()?);
                    let keys = rusqlite::params_from_iter(chunk.iter().map(|u| u.as_str()));
                    let mut stmt = self.conn.prepare(&format!("SELECT a.ucr, {AGENCY_COLUMNS} FROM agency_release_times a WHERE a.ucr IN ({marks})"))?;
                    agencies.extend(stmt.query_map(keys, agency_row)?.collect::<Result<Vec<_>, _>>()?);
                }
            }
        }
        Ok((consignments, agencies))
    }
}

impl Answers for SqliteLedger {
    fn document_ucr(&mut self, document_id: Uuid) -> Result<Option<Ucr>, StoreError> {
        let ucr: Option<String> =
            self.conn.row("SELECT ucr FROM documents WHERE id = ?1", [document_id.to_string()], |r| r.get(0)).optional()?;
        ucr.map(|u| parse_ucr(&u)).transpose()
    }

    fn delivery_to(&mut self, document_id: Uuid, agency: &AgencyId) -> Result<Option<DeliveryState>, StoreError> {
        let row: Option<(i64, String, Option<i64>, i64, bool)> = self
            .conn
            .row(
                "SELECT d.id, d.status, d.first_answer_at, d.created_at, doc.superseded_by IS NULL AND doc.withdrawn_at IS NULL
                 FROM deliveries d JOIN documents doc ON doc.id = d.document_id
                 WHERE d.document_id = ?1 AND d.agency = ?2 AND d.notice_id IS NULL",
                params![document_id.to_string(), agency.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        row.map(|(id, status, first_answer_at, routed_at, document_current)| {
            Ok(DeliveryState { id, status: parse_status(&status)?, first_answer_at, routed_at, document_current })
        })
        .transpose()
    }

    fn record_answer(&mut self, delivery_id: i64, status: DeliveryStatus, at: Millis, received: bool) -> Result<(), StoreError> {
        self.conn.exec(
            "UPDATE deliveries SET status = ?2, first_answer_at = COALESCE(first_answer_at, ?3), failed_at = NULL,
                                   dispatched_at = CASE WHEN ?4 THEN COALESCE(dispatched_at, ?3) ELSE dispatched_at END
             WHERE id = ?1",
            params![delivery_id, status.as_str(), at, received],
        )?;
        Ok(())
    }

    fn note_first_answer(&mut self, delivery_id: i64, at: Millis) -> Result<(), StoreError> {
        self.conn.exec("UPDATE deliveries SET first_answer_at = COALESCE(first_answer_at, ?2) WHERE id = ?1", params![delivery_id, at])?;
        Ok(())
    }

    fn record_inspection(&mut self, delivery_id: i64, i: &Inspection, at: Millis, facts: Option<&str>) -> Result<(), StoreError> {
        self.conn.exec(
            "INSERT OR REPLACE INTO inspections (delivery_id, at, performed, finding, revenue, code, facts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![delivery_id, at, i.performed, i.finding.map(Finding::as_str), i.revenue, i.code, facts],
        )?;
        Ok(())
    }
}


impl SqliteLedger {
    /// [`Outbox::mark_dispatched`] of one delivery (a statement prepared once: SQLite has no
    /// round trip to save).
    fn mark_one_dispatched(&mut self, delivery_id: i64, at: Millis) -> Result<Option<DeliveryPlace>, StoreError> {
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
}

impl Outbox for SqliteLedger {
    fn due_deliveries(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<OutboundDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            &format!("SELECT {OUTBOUND_COLUMNS}
             WHERE d.dispatched_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= ?2
               AND NOT EXISTS (
                   SELECT 1 FROM documents hd JOIN deliveries h ON h.document_id = hd.id
                   WHERE hd.ucr = doc.ucr AND h.topic = d.topic AND h.id < d.id AND h.dispatched_at IS NULL
                     AND (h.failed_at IS NOT NULL OR h.next_attempt_at > ?2))
               AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.ucr = doc.ucr AND c.instance <> ?3 AND c.until > ?2)
             ORDER BY d.id LIMIT ?1"),
        )?;
        let rows = stmt.query_map(params![limit as i64, now, instance], outbound_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(outbound).collect()
    }

    fn agency_deliveries(&mut self, agency: &AgencyId, after: i64, limit: usize, max_bytes: usize) -> Result<Vec<OutboundDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            &format!("SELECT {OUTBOUND_COLUMNS} WHERE d.agency = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3"),
        )?;
        // Row by row, stopping once the payloads reach `max_bytes`: the rest is not read.
        let mut rows = stmt.query(params![agency.as_str(), after, limit as i64])?;
        let (mut page, mut bytes) = (Vec::new(), 0usize);
        while bytes < max_bytes {
            let Some(row) = rows.next()? else { break };
            let d = outbound(outbound_row(row)?)?;
            bytes += d.payload.len();
            page.push(d);
        }
        Ok(page)
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

    fn mark_dispatched(&mut self, deliveries: &[(i64, Millis)]) -> Result<Vec<Option<DeliveryPlace>>, StoreError> {
        deliveries.iter().map(|(id, at)| self.mark_one_dispatched(*id, *at)).collect()
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
            // A delivery its agency's standing instruction released before it was published keeps
            // that decision: it leaves the outbox for the failed list all the same.
            "UPDATE deliveries SET status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, failed_at = ?2,
                                   attempts = attempts + 1, last_error = ?3
             WHERE id = ?1 AND dispatched_at IS NULL AND failed_at IS NULL",
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
            "UPDATE deliveries SET status = CASE WHEN status = 'failed' THEN 'pending' ELSE status END, failed_at = NULL, attempts = 0, next_attempt_at = 0
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

    fn claim_consignment(&mut self, ucr: &Ucr, instance: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        Ok(self.conn.exec(
            "INSERT INTO outbox_claims (ucr, instance, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (ucr) DO UPDATE SET instance = excluded.instance, until = excluded.until
             WHERE outbox_claims.instance = excluded.instance OR outbox_claims.until <= ?4",
            params![ucr.as_str(), instance, until, now],
        )? == 1)
    }

    fn release_claims(&mut self, instance: &str) -> Result<u64, StoreError> {
        self.conn.exec("UPDATE webhooks SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = ?1", [instance])?;
        Ok(self.conn.exec("DELETE FROM outbox_claims WHERE instance = ?1", [instance])? as u64)
    }

    fn claims_held(&mut self, instance: &str, now: Millis) -> Result<u64, StoreError> {
        let n: i64 = self.conn.row("SELECT COUNT(*) FROM outbox_claims WHERE instance = ?1 AND until > ?2", params![instance, now], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

impl StatusEvents for SqliteLedger {
    fn queue_status_event(&mut self, ucr: &Ucr, body: &str, at: Millis) -> Result<(), StoreError> {
        // The owner: every document of a consignment is its opener's.
        self.conn.exec(
            "INSERT INTO status_outbox (ucr, body, created_at, owner) VALUES (?1, ?2, ?3, (SELECT sender FROM documents WHERE ucr = ?1 LIMIT 1))",
            params![ucr.as_str(), body, at],
        )?;
        Ok(())
    }

    fn unpublished_status_events(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<StatusEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.ucr, s.body FROM status_outbox s WHERE s.published_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.ucr = s.ucr AND c.instance <> ?2 AND c.until > ?3)
             ORDER BY s.id LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit as i64, instance, now], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, ucr, body)| Ok(StatusEvent { id, position: id, ucr: parse_ucr(&ucr)?, body })).collect()
    }

    fn mark_status_published(&mut self, ids: &[i64], at: Millis) -> Result<(), StoreError> {
        for id in ids {
            self.conn.exec("UPDATE status_outbox SET published_at = ?2 WHERE id = ?1", params![id, at])?;
        }
        Ok(())
    }

    fn status_events_after(&mut self, sender: Option<&str>, after: i64, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        // By the owner's index when one participant's: what it costs is what it returns.
        let mut stmt = self.conn.prepare_cached(match sender {
            Some(_) => "SELECT id, ucr, body FROM status_outbox WHERE owner = ?2 AND id > ?1 ORDER BY id LIMIT ?3",
            None => "SELECT id, ucr, body FROM status_outbox WHERE id > ?1 AND ?2 IS NULL ORDER BY id LIMIT ?3",
        })?;
        let rows = stmt
            .query_map(params![after, sender, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, ucr, body)| Ok(StatusEvent { id, position: id, ucr: parse_ucr(&ucr)?, body })).collect()
    }

    fn latest_status_event(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.row("SELECT COALESCE(MAX(id), 0) FROM status_outbox", [], |r| r.get(0))?)
    }
}

impl WebhookRegistry for SqliteLedger {
    fn insert_webhook(&mut self, id: Uuid, participant: &str, url: &str, secret: &str, at: Millis, cursor: i64, max: usize)
        -> Result<bool, StoreError> {
        // One writer: nothing registers between the count and the insert.
        let count: i64 = self.conn.row("SELECT COUNT(*) FROM webhooks WHERE participant = ?1", params![participant], |r| r.get(0))?;
        if count >= max as i64 {
            return Ok(false);
        }
        self.conn.exec(
            "INSERT INTO webhooks (id, participant, url, secret, created_at, cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.to_string(), participant, url, secret, at, cursor],
        )?;
        Ok(true)
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

    fn due_webhooks(&mut self, instance: &str, now: Millis) -> Result<Vec<WebhookTarget>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, participant, url, secret, cursor, attempts FROM webhooks
             WHERE next_attempt_at <= ?1 AND (claimed_by IS NULL OR claimed_by = ?2 OR claimed_until <= ?1)
             ORDER BY next_attempt_at, id",
        )?;
        let rows = stmt
            .query_map(params![now, instance], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?)))?
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

    fn claim_webhooks(&mut self, ids: &[Uuid], instance: &str, now: Millis, until: Millis) -> Result<Vec<Uuid>, StoreError> {
        let mut won = Vec::with_capacity(ids.len());
        for id in ids {
            let n = self.conn.exec(
                "UPDATE webhooks SET claimed_by = ?2, claimed_until = ?4
                 WHERE id = ?1 AND (claimed_by IS NULL OR claimed_by = ?2 OR claimed_until <= ?3)",
                params![id.to_string(), instance, now, until],
            )?;
            if n == 1 {
                won.push(*id);
            }
        }
        Ok(won)
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
}

impl AuditLog for SqliteLedger {
    fn audit_chain(&mut self) -> String {
        // One writer, one chain.
        ONE_CHAIN.to_owned()
    }

    fn audit_heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        Ok(self.audit_head()?.map(|(seq, hash)| ChainHead { chain: ONE_CHAIN.to_owned(), seq, hash }).into_iter().collect())
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
                    chain: ONE_CHAIN.to_owned(),
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

impl RiskRuleSets for SqliteLedger {
    fn save_risk_rules(&mut self, at: Millis, changed_by: &str, reason: &str, rules: &str) -> Result<i64, StoreError> {
        // One writer: the next version is free.
        let version: i64 = self.conn.row("SELECT COALESCE(MAX(version), 0) + 1 FROM risk_rule_sets", [], |r| r.get(0))?;
        self.conn.exec(
            "INSERT INTO risk_rule_sets (version, at, changed_by, reason, rules) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version, at, changed_by, reason, rules],
        )?;
        Ok(version)
    }

    fn latest_risk_rules(&mut self) -> Result<Option<RiskRuleSet>, StoreError> {
        Ok(self
            .conn
            .row("SELECT version, at, changed_by, reason, rules FROM risk_rule_sets ORDER BY version DESC LIMIT 1", [], |r| {
                Ok(RiskRuleSet { version: r.get(0)?, at: r.get(1)?, changed_by: r.get(2)?, reason: r.get(3)?, rules: r.get(4)? })
            })
            .optional()?)
    }
}

impl RiskLearning for SqliteLedger {
    fn findings_after(&mut self, after: (Millis, i64), limit: usize) -> Result<Vec<FindingRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT delivery_id, at, finding, facts FROM inspections
              WHERE (at, delivery_id) > (?1, ?2) AND performed AND finding IS NOT NULL AND facts IS NOT NULL
              ORDER BY at, delivery_id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![after.0, after.1, limit as i64], finding_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn findings_of_sender(&mut self, sender: Option<&str>, from: Millis, to: Millis, limit: usize) -> Result<Vec<FindingRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.delivery_id, i.at, i.finding, i.facts
               FROM inspections i JOIN deliveries d ON d.id = i.delivery_id JOIN documents doc ON doc.id = d.document_id
              WHERE i.at >= ?2 AND i.at < ?3 AND i.performed AND i.finding IS NOT NULL AND i.facts IS NOT NULL AND (?1 IS NULL OR doc.sender = ?1)
              ORDER BY i.at, i.delivery_id LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![sender, from, to, limit as i64], finding_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn save_risk_model(&mut self, trained_at: Millis, trained_by: &str, live: bool, model: &str) -> Result<i64, StoreError> {
        let version: i64 = self.conn.row("SELECT COALESCE(MAX(version), 0) + 1 FROM risk_models", [], |r| r.get(0))?;
        if live {
            self.conn.exec("UPDATE risk_models SET live = 0 WHERE live = 1", [])?;
        }
        self.conn.exec(
            "INSERT INTO risk_models (version, trained_at, trained_by, live, model) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version, trained_at, trained_by, live, model],
        )?;
        Ok(version)
    }

    fn selection_outcomes(&mut self, from: Millis, to: Millis, agency: Option<&AgencyId>, limit: usize)
        -> Result<Vec<SelectionOutcome>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.agency, d.created_at, d.selection, CASE WHEN i.performed THEN i.finding END, i.revenue
               FROM deliveries d LEFT JOIN inspections i ON i.delivery_id = d.id
              WHERE d.created_at >= ?1 AND d.created_at < ?2 AND d.selection IS NOT NULL AND (?3 IS NULL OR d.agency = ?3)
              ORDER BY d.id LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![from, to, agency.map(AgencyId::as_str), limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, Option<f64>>(4)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(agency, at, selection, finding, revenue)| {
                Ok(SelectionOutcome {
                    agency: AgencyId::parse(&agency).map_err(|e| StoreError::Corrupt(format!("delivery agency {agency:?}: {e}")))?,
                    at,
                    selection,
                    finding: finding.as_deref().map(Finding::parse).transpose().map_err(StoreError::Corrupt)?,
                    revenue,
                })
            })
            .collect()
    }

    fn live_risk_model(&mut self) -> Result<Option<RiskModelRecord>, StoreError> {
        Ok(self
            .conn
            .row("SELECT version, trained_at, trained_by, live, model FROM risk_models WHERE live = 1 ORDER BY version DESC LIMIT 1", [], |r| {
                Ok(RiskModelRecord { version: r.get(0)?, trained_at: r.get(1)?, trained_by: r.get(2)?, live: r.get(3)?, model: r.get(4)? })
            })
            .optional()?)
    }
}

impl Store for SqliteStore {
    fn write(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, work: Work) -> StoreFuture<'_, Decided> {
        Box::pin(self.writer.write(subjects, lookups, work))
    }

    fn read(&self, work: Work) -> StoreFuture<'_, Decided> {
        Box::pin(self.read_job(work))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.writer.run(|db| db.run("SELECT 1")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, doc};

    async fn open() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Arc::new(SqliteStore::open(dir.path()).unwrap()), dir)
    }

    crate::conformance_suite!(open);

    #[tokio::test]
    async fn the_checkpointer_copies_the_log_into_the_file_while_the_writer_goes_on() {
        let (store, dir) = open().await;
        let file = dir.path().join("ventanilla.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        let wal = || std::fs::metadata(dir.path().join("ventanilla.db-wal")).map_or(0, |m| m.len());
        let before = size();
        for i in 0..300 {
            crate::submission::accept(&*store, doc(&format!("UCR-CK{i}"), &["br-customs"])).await.unwrap().unwrap();
        }
        // The writer does not checkpoint a log this short (its commits would wait for it): what
        // it committed is in the log until the checkpointer's next turn copies it into the file.
        let mut after = size();
        for _ in 0..50 {
            if after > before + 100 * 1024 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            after = size();
        }
        assert!(after > before + 100 * 1024, "the file grew from {before} to {after} bytes (log: {} bytes)", wal());
        // And the store reads back what it holds.
        let held = store.read_with(|l| l.due_deliveries("gw-test", 1000, crate::clock::now_millis())).await.unwrap();
        assert_eq!(held.len(), 300);
    }

    #[tokio::test]
    async fn a_store_with_amended_documents_gets_their_histories_at_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ventanilla.db");
        {
            // A store as version 6 left it: a document amended twice, and another one.
            let mut conn = super::open(&path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys=OFF").unwrap();
            embedded::migrations::runner().set_target(refinery::Target::Version(6)).run(&mut conn).unwrap();
            conn.execute_batch(
                "INSERT INTO consignments (ucr, state, created_at, updated_at) VALUES ('UCR-V6', 'submitted', 1, 1);
                 INSERT INTO documents (id, ucr, document_type, schema_version, schema_id, origin, destination, sender, payload,
                                        submitted_at, body_sha256, receipt, version, amends, superseded_by)
                 VALUES ('00000000-0000-7000-8000-000000000001', 'UCR-V6', 'commercialInvoice', '1.0.0', 'x', 'AR', 'BR', 'demo-trader', '{}',
                         1, 'h1', 'r1', 1, NULL, '00000000-0000-7000-8000-000000000002'),
                        ('00000000-0000-7000-8000-000000000002', 'UCR-V6', 'commercialInvoice', '1.0.0', 'x', 'AR', 'BR', 'demo-trader', '{}',
                         2, 'h2', 'r2', 2, '00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000003'),
                        ('00000000-0000-7000-8000-000000000003', 'UCR-V6', 'commercialInvoice', '1.0.0', 'x', 'AR', 'BR', 'demo-trader', '{\"big\": 1}',
                         3, 'h3', 'r3', 3, '00000000-0000-7000-8000-000000000002', NULL),
                        ('00000000-0000-7000-8000-000000000004', 'UCR-V6', 'packingList', '1.0.0', 'x', 'AR', 'BR', 'demo-trader', '{}',
                         4, 'h4', 'r4', 1, NULL, NULL);",
            )
            .unwrap();
        }
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_file(&path).unwrap());
        let ucr = Ucr::parse("UCR-V6").unwrap();
        let (chains, third) = store
            .read_with(move |l| Ok((l.document_chains(&ucr)?, l.document(Uuid::parse_str("00000000-0000-7000-8000-000000000003").unwrap())?)))
            .await
            .unwrap();
        let id = |n: u8| Uuid::parse_str(&format!("00000000-0000-7000-8000-00000000000{n}")).unwrap();
        assert_eq!(
            chains,
            [
                DocumentChain { chain: id(1), latest: id(3), latest_version: 3, versions: 3 },
                DocumentChain { chain: id(4), latest: id(4), latest_version: 1, versions: 1 },
            ]
        );
        let third = third.expect("kept");
        assert_eq!((third.payload.as_str(), third.body_sha256.as_str(), third.record.chain), ("{\"big\": 1}", "h3", id(1)));
        // The receipt kept in the row by earlier versions is still answered.
        let receipt = store.read_with(move |l| l.receipt_of(id(2))).await.unwrap();
        assert_eq!(receipt.as_deref(), Some("r2"));
    }

    /// What SQLite plans for `sql`: one line per step.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let params: Vec<String> = (0..n).map(|_| "1".to_owned()).collect();
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3)).unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
    }

    #[tokio::test]
    async fn a_documents_history_is_read_by_index_and_its_facts_before_its_payload() {
        let (_store, dir) = open().await;
        let conn = Connection::open(dir.path().join("ventanilla.db")).unwrap();
        let chains = plan(&conn, CHAINS);
        assert!(chains.contains("USING COVERING INDEX documents_by_chain"), "{chains}");
        let versions = plan(&conn, &format!("SELECT {DOCUMENT_COLUMNS} {CHAIN_VERSIONS}"));
        assert!(versions.contains("USING INDEX documents_by_chain") && !versions.contains("TEMP B-TREE"), "{versions}");
        let counted = plan(&conn, IDENTITY_VERSIONS);
        assert!(counted.contains("USING COVERING INDEX documents_by_identity"), "{counted}");
        // A column after a large payload is reached only through the payload's overflow pages:
        // every fact of a document comes before it.
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('documents') ORDER BY cid").unwrap();
        let columns: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(columns[columns.len() - 2..], ["payload", "receipt"], "{columns:?}");
    }

    #[tokio::test]
    async fn a_receipt_kept_the_earlier_way_is_still_answered_to_a_resend() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = doc("UCR-OLD", &["br-customs"]);
        first.idempotency_key = Some("key-old".into());
        {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let Acceptance::New(_) = crate::submission::accept(&*store, first.clone()).await.unwrap().unwrap() else { panic!("new") };
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
        match crate::submission::accept(&*store, again.clone()).await.unwrap().unwrap() {
            Acceptance::Replayed(r) => assert_eq!(r["documentId"], first.id.to_string()),
            other => panic!("expected the first receipt, got {other:?}"),
        }
        again.body_sha256 = "different".into();
        assert!(matches!(crate::submission::accept(&*store, again).await, Ok(Err(crate::submission::Refused::Conflict { .. }))));
        let _ = conformance::ack; // the suite's helpers serve this file's own cases too
    }

    #[tokio::test]
    async fn consignments_accepted_before_the_risk_channel_segment_take_their_strictest_selection() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        for (ucr, selections) in [("UCR-MIG-Y", [Some("yellow"), Some("green")]), ("UCR-MIG-N", [None, None])] {
            let mut d = conformance::doc(ucr, &["br-customs", "br-sanitary"]);
            for (delivery, channel) in d.deliveries.iter_mut().zip(selections) {
                delivery.selection = channel.map(|c| format!(r#"{{"channel":"{c}","score":1.0,"source":"rule","reasons":[]}}"#));
            }
            crate::submission::accept(&*store, d).await.unwrap().unwrap();
        }
        drop(store);
        // As V13 found them: every consignment unselected, then its UPDATE.
        let migration = include_str!("../../migrations/sqlite/V13__release_times_by_risk_channel.sql");
        let update = &migration[migration.find("UPDATE").unwrap()..];
        let conn = Connection::open(dir.path().join("ventanilla.db")).unwrap();
        conn.execute("UPDATE release_times SET risk_channel = 'unselected'", []).unwrap();
        conn.execute_batch(update).unwrap();
        let channel = |ucr: &str| conn.query_row("SELECT risk_channel FROM release_times WHERE ucr = ?1", [ucr], |r| r.get::<_, String>(0)).unwrap();
        assert_eq!((channel("UCR-MIG-Y").as_str(), channel("UCR-MIG-N").as_str()), ("yellow", "unselected"));
    }

    #[tokio::test]
    async fn facts_written_before_the_tfa_monitor_are_kept_and_completed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let mut d = conformance::doc("UCR-V14", &["br-customs", "br-sanitary"]);
        d.deliveries[0].selection = Some(r#"{"channel":"red","score":90.0,"source":"rule","reasons":[]}"#.into());
        crate::submission::accept(&*store, d).await.unwrap().unwrap();
        let one = vec![Ucr::parse("UCR-V14").unwrap()];
        let read = {
            let store = store.clone();
            move || {
                let one = one.clone();
                let store = store.clone();
                async move { store.read_with(move |l| l.release_times_of(Some(&one))).await.unwrap() }
            }
        };
        let complete = read().await;
        // As V14 leaves facts an earlier version wrote (or a gateway of that version writes),
        // their lodgement as an earlier rule may have had it.
        let sql = |batch: &str| Connection::open(dir.path().join("ventanilla.db")).unwrap().execute_batch(batch).unwrap();
        sql("UPDATE release_times SET documents = NULL, amendments = NULL, queries = NULL, resubmissions = NULL, lodged_at = lodged_at - 5;
             UPDATE agency_release_times SET selected_channel = NULL, selected_by = NULL, finding = NULL, standing_instruction = NULL;");
        let (before, parts) = read().await;
        assert_eq!((before[0].formalities, parts.iter().all(|(_, p)| p.selectivity.is_none())), (None, true), "read as not computed");
        assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 1, "completed at the start");
        let (after, parts) = read().await;
        assert_eq!(after[0].lodged_at, complete.0[0].lodged_at - 5, "the times are kept as they were");
        assert_eq!((after[0].formalities, parts), (complete.0[0].formalities, complete.1.clone()), "the new columns as computed at acceptance");
        assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 0, "nothing left");
        // A PostgreSQL gateway of the earlier version keeps a consignment's formalities but
        // writes its agencies' rows without theirs: completed too.
        sql("UPDATE agency_release_times SET selected_channel = NULL, selected_by = NULL, finding = NULL, standing_instruction = NULL");
        assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 1, "an agency's row alone");
        assert_eq!(read().await.1, complete.1);
        // A kept part the rows do not give (none should be) stays not computed, and is not
        // written again at each start.
        sql("INSERT INTO agency_release_times (ucr, agency, lodged_at, routed_at, hold_ms, query_trader_ms, query_agency_ms)
             SELECT ucr, 'br-border', lodged_at, lodged_at, 0, 0, 0 FROM release_times");
        for start in 0..2 {
            assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 0, "start {start}: nothing to write");
        }
        let parts = read().await.1;
        assert_eq!(parts.iter().find(|(_, p)| p.agency.as_str() == "br-border").map(|(_, p)| p.selectivity), Some(None));
    }

    #[tokio::test]
    async fn a_store_written_before_versioned_migrations_upgrades_in_place() {
        // Written by the gateway of da8857f (schema by CREATE IF NOT EXISTS, no migration
        // history): two documents of one trader, a hold from br-customs.
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-before-migrations.db");
        std::fs::copy(&fixture, dir.path().join("ventanilla.db")).unwrap();
        let history = |dir: &Path| {
            let conn = Connection::open(dir.join("ventanilla.db")).unwrap();
            let mut stmt = conn.prepare("SELECT version FROM refinery_schema_history ORDER BY version").unwrap();
            stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
        };
        {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let held = store
                .read_with(|l| crate::tracking::consignment_view(l, &Ucr::parse("5AR30714255831-C0781").unwrap()))
                .await
                .unwrap()
                .expect("the fixture's consignment is still there");
            assert_eq!(held.state, ConsignmentState::OnHold);
            assert_eq!(held.documents.len(), 2);
            let records = store.read_with(|l| l.audit_records()).await.unwrap();
            assert_eq!(records.len(), 9);
            assert!(crate::audit::verify(records).is_ok());
            // The store goes on: a new document, its audit record chained to the old ones.
            crate::submission::accept(&*store, doc("UCR-AFTER-UPGRADE", &["br-customs"])).await.unwrap().unwrap();
            let records = store.read_with(|l| l.audit_records()).await.unwrap();
            assert_eq!(records.len(), 10);
            assert!(crate::audit::verify(records).is_ok());
            // The consignment from before the indicators gets its release-time facts (once).
            let all = || ReleaseTimesQuery { from: 0, to: Millis::MAX, owner: None, agency: None };
            assert_eq!(store.read_with(move |l| l.release_times(&all())).await.unwrap().len(), 1, "only the new one");
            assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 1);
            let facts = store.read_with(move |l| l.release_times(&all())).await.unwrap();
            let old = facts.iter().find(|c| c.ucr.as_str() == "5AR30714255831-C0781").expect("computed");
            assert_eq!((old.channel.as_str(), old.dims.transport_mode.as_deref()), ("with-hold", None));
            assert_eq!(crate::indicators::backfill(&*store).await.unwrap(), 0, "nothing left");
        }
        assert_eq!(history(dir.path()), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "every version recorded");
        SqliteStore::open(dir.path()).unwrap();
        assert_eq!(history(dir.path()), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "and none run again");
    }

    #[tokio::test]
    async fn read_work_cannot_write() {
        let (store, _dir) = open().await;
        let wrote = store.read_with(|l| l.open_consignment(&Ucr::parse("UCR-RO").unwrap(), ConsignmentState::Submitted, 0, "x")).await;
        assert!(matches!(wrote, Err(StoreError::Database(_))), "{wrote:?}");
    }
}
