//! The PostgreSQL store, for regions that run several gateways on one database: the SQL of every
//! [`Ledger`] operation on tokio-postgres, with a deadpool pool.
//!
//! - **Writes** go through this gateway's writer thread with group commit (`writer.rs`), on a
//!   connection of its own: one transaction per group, one commit for many documents, and a few
//!   round trips whatever the group's size (`group.rs`): the group opens in one (`BEGIN`, its
//!   locks, its lookups), its rows go as one multi-row statement per table with the next read
//!   or the commit, and the sequencing takes one.
//! - **Reads** take a connection from the pool each, concurrently (read committed: they see
//!   committed rows only).
//! - **Several gateways**, and no lock for all of them:
//!   - a group's transaction takes, at `BEGIN`, one advisory lock per subject its works decide on
//!     (a consignment, an idempotency key), all at once and in one order: groups sharing a
//!     subject take turns, the others run side by side, and no two groups wait on each other;
//!   - each gateway appends to an audit chain of its own, anchored to the others (`crate::audit`);
//!   - ownership of a UCR, idempotency keys and the webhook limit are held by constraints
//!     (`migrations/postgres/`), whatever the rules read;
//!   - cursors follow a `position` given after commit, in commit order, by a sequencer
//!     ([`sequence`]): identity values are taken in one order and committed in another, so a
//!     cursor on ids could pass a row that another gateway commits later.
//! - **Migrations** run at start under an advisory lock, so gateways started together apply
//!   each version once.
//!
//! The [`Ledger`] contract is synchronous; the statements a read needs (with the rows pending
//! before it) are sent as one pipeline through the runtime's handle (`Handle::block_on`), from
//! the writer thread or a blocking thread.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::writer::{Transactional, Writer};
use group::{Facts, Op, Pending};
use std::pin::Pin;
use super::*;
use crate::clock::rfc3339;

/// Connections of the pool: the writer's, and readers'.
const POOL_SIZE: usize = 16;
/// The advisory lock gateways take while migrating.
const MIGRATION_LOCK: i64 = 0x7e47_a111;
/// The advisory lock of the sequencer: whoever holds it gives positions; the others skip.
const SEQUENCER_LOCK: i64 = 0x7e47_a113;
/// How often each gateway sequences what it did not see committed (another gateway's rows
/// when that gateway's own sequencing found the lock taken).
const SEQUENCER_TICK: std::time::Duration = std::time::Duration::from_millis(50);
/// Most rows of a table one sequencing gives positions to; the rest, at once after.
const SEQUENCE_BATCH: i64 = 10_000;

mod group;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(Box::new(PgError(e)))
}

/// The driver's error, said with what the server said: tokio-postgres writes only "db error"
/// for every error the server sends (a deadlock, a constraint...), its message in the source.
#[derive(Debug)]
struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "PostgreSQL {} {}: {}", db.severity(), db.code().code(), db.message()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no PostgreSQL connection: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The store on one PostgreSQL database.
pub struct PgStore {
    writer: Writer,
    pool: Pool,
    rt: Handle,
    chain: Arc<str>,
    /// The periodic sequencer, stopped with the store.
    sequencer: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.sequencer.abort();
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), runs the migrations not yet applied,
    /// and starts the writer, whose audit records go to the chain `chain` (the gateway's
    /// instance: no other writer may use the same name).
    pub async fn connect(url: &str, chain: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}")))?;
        migrate(&config).await?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {e}")))?;
        let rt = Handle::current();
        let client = pool.get().await.map_err(pool_error)?;
        let chain: Arc<str> = chain.into();
        let writer = Writer::start("store-writer-pg", PgLedger::new(client, pool.clone(), rt.clone(), chain.clone(), true))?;
        let sequencer = tokio::spawn(sequence_every(pool.clone(), SEQUENCER_TICK));
        Ok(PgStore { writer, pool, rt, chain, sequencer })
    }
}

/// Gives positions to the deliveries and status events committed without one, in id order
/// within one call, each call after the previous one's commit: a row committed after another
/// was positioned gets a higher position, so no cursor passes it. Rows a writer holds at that
/// moment (a delivery being dispatched or answered) are skipped, never waited for, and get a
/// later position: the sequencer holds its lock only for its own statements, and never waits
/// on a writer that might wait on it. One gateway at a time holds the sequencer's lock (taken before the statements, so
/// their snapshot sees every earlier sequencing). With `wait`, a gateway that finds it taken
/// waits for it (a sequencing holds no other lock and lasts a few statements); without, it
/// does nothing, and the holder or a later tick positions its rows. How many rows got one.
pub async fn sequence(client: &tokio_postgres::Client, wait: bool) -> Result<u64, tokio_postgres::Error> {
    use tokio_postgres::SimpleQueryMessage;
    // One round trip a sequencing: the statements go as one simple query, in one transaction.
    let lock = if wait { "pg_advisory_xact_lock" } else { "pg_try_advisory_xact_lock" };
    // Index scans only: estimating the waiting rows as many (the `LIMIT`), the planner joins
    // them to the table by scanning it whole, a cost that grows with every row ever written.
    let mut script = format!("BEGIN; SET LOCAL enable_seqscan = off; SELECT {lock}({SEQUENCER_LOCK});");
    for table in ["deliveries", "status_outbox", "release_time_changes"] {
        script.push_str(&format!(
            "UPDATE {table} t SET position = base.last + todo.n
               FROM (SELECT COALESCE(MAX(position), 0) AS last FROM {table}) AS base,
                    (SELECT id, row_number() OVER (ORDER BY id) AS n
                       FROM (SELECT id FROM {table} WHERE position IS NULL ORDER BY id LIMIT {SEQUENCE_BATCH}
                             FOR UPDATE SKIP LOCKED) AS waiting) AS todo,
                    -- Held since the first statement (taken again: true), else nothing moves.
                    (SELECT pg_try_advisory_xact_lock({SEQUENCER_LOCK}) AS ok) AS held
              WHERE t.id = todo.id AND held.ok;"
        ));
    }
    script.push_str("COMMIT;");
    let mut positioned = 0;
    loop {
        let answers = client.simple_query(&script).await?;
        let mut held = true;
        let mut counts = Vec::new();
        for a in &answers {
            match a {
                SimpleQueryMessage::Row(row) if !wait => held = row.get(0) == Some("t"),
                SimpleQueryMessage::CommandComplete(n) => counts.push(*n),
                _ => {}
            }
        }
        // Completions: BEGIN, SET, the lock's SELECT, the three updates, COMMIT.
        let updated: Vec<u64> = counts.iter().skip(3).take(3).copied().collect();
        if !held {
            return Ok(positioned);
        }
        positioned += updated.iter().sum::<u64>();
        if !updated.iter().any(|n| *n as i64 == SEQUENCE_BATCH) {
            return Ok(positioned);
        }
    }
}

/// [`sequence`] every `tick`, on a pooled connection, until the store is dropped.
async fn sequence_every(pool: Pool, tick: std::time::Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Ok(client) = pool.get().await else { continue };
        if let Err(e) = sequence(&client, false).await {
            tracing::warn!(error = %e, "store: cannot give cursor positions now; trying again");
            let _ = client.batch_execute("ROLLBACK").await;
        }
    }
}

/// Applies the migrations not yet applied, one gateway at a time.
async fn migrate(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
    let connection = tokio::spawn(connection);
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
    let applied = embedded::migrations::runner().run_async(&mut client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    drop(client);
    let _ = connection.await;
    applied.map_err(|e| StoreError::Unavailable(format!("the store's migrations failed: {e}")))?;
    unlocked.map_err(db_error)?;
    Ok(())
}

impl Store for PgStore {
    fn write(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, work: Work) -> StoreFuture<'_, Decided> {
        Box::pin(self.writer.write(subjects, lookups, work))
    }

    fn read(&self, work: Work) -> StoreFuture<'_, Decided> {
        let (pool, rt, chain) = (self.pool.clone(), self.rt.clone(), self.chain.clone());
        Box::pin(async move {
            let client = pool.get().await.map_err(pool_error)?;
            let chain = chain.clone();
            tokio::task::spawn_blocking(move || work(&mut PgLedger::new(client, pool, rt, chain, false)))
                .await
                .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.writer.run(|db| db.run("SELECT 1")))
    }
}

/// The rows, on one pooled connection.
pub struct PgLedger {
    client: Object,
    /// To replace the writer's connection when it broke.
    pool: Pool,
    rt: Handle,
    /// The audit chain this writer appends to.
    chain: Arc<str>,
    /// The writer's own state of its open transaction; a reader's ledger has none (it sends
    /// every statement at once and keeps nothing).
    group: Option<Box<GroupState>>,
}

/// What the writer keeps of its open transaction (`group.rs`).
#[derive(Default)]
struct GroupState {
    pending: Pending,
    facts: Facts,
    /// This chain's last record, once read or written in this transaction.
    audit_head: Option<(i64, String)>,
    /// Delivery ids taken for this transaction and not used yet, in the order taken.
    delivery_ids: std::collections::VecDeque<i64>,
    /// A statement failed: the database aborted the transaction.
    aborted: bool,
}

/// Delivery ids taken at once when the group's lookups did not foresee them (an amendment).
const ID_BLOCK: i64 = 8;
/// Takes `$1` delivery ids, in increasing order.
const TAKE_DELIVERY_IDS: &str =
    "SELECT nextval(q.s) FROM (SELECT pg_get_serial_sequence('deliveries', 'id') AS s) AS q, generate_series(1, $1::bigint) ORDER BY 1";

impl PgLedger {
    fn new(client: Object, pool: Pool, rt: Handle, chain: Arc<str>, writer: bool) -> PgLedger {
        let group = writer.then(|| Box::new(GroupState::default()));
        PgLedger { client, pool, rt, chain, group }
    }

    /// Sends the pending rows and then `sql`, in one pipeline (one round trip); `sql`'s answer.
    fn send(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)], rows: bool, writes: bool) -> Result<Answer, StoreError> {
        let (pending, covered) = self.group.as_mut().map(|g| g.pending.take(writes)).unwrap_or_default();
        let mut batch = piped(&pending);
        batch.push((sql, params.to_vec(), rows));
        let result = self.rt.block_on(pipeline(&self.client, &batch));
        self.answered(result, covered).map(|mut answers| answers.pop().unwrap_or(Answer::Changed(0)))
    }

    /// A pipeline's answers; on a failed statement, notes whether the transaction can go on: it
    /// can when the running job's savepoint covers the statement (the job is undone alone), not
    /// when an earlier job's rows failed (the database aborted the whole transaction).
    fn answered(&mut self, result: Result<Vec<Answer>, (usize, tokio_postgres::Error)>, covered: Option<usize>) -> Result<Vec<Answer>, StoreError> {
        result.map_err(|(failed, e)| {
            if let Some(g) = self.group.as_mut() {
                if !covered.is_some_and(|from| failed >= from) {
                    g.aborted = true;
                }
            }
            db_error(e)
        })
    }

    fn rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        Ok(self.send(sql, params, true, false)?.rows())
    }

    fn row(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// A write that answers rows (`RETURNING`): sent at once, after the pending rows; every fact
    /// is forgotten.
    fn write_rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        if let Some(g) = self.group.as_mut() {
            g.facts.clear();
        }
        Ok(self.send(sql, params, true, true)?.rows())
    }

    /// A write that cannot wait (it answers something) or that the facts do not follow: sent at
    /// once, after the pending rows; every fact is forgotten. How many rows it changed.
    fn exec(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        if let Some(g) = self.group.as_mut() {
            g.facts.clear();
        }
        Ok(self.send(sql, params, false, true)?.changed())
    }

    /// Keeps `op` to send with the next read or the commit; a reader's ledger (which writes
    /// nothing in principle) sends it at once.
    fn defer(&mut self, op: Op) -> Result<(), StoreError> {
        match self.group.as_mut() {
            Some(g) => {
                g.pending.push(op);
                Ok(())
            }
            None => {
                let mut pending = Pending::default();
                pending.push(op);
                let (statements, _) = pending.take(false);
                self.rt.block_on(pipeline(&self.client, &piped(&statements))).map(|_| ()).map_err(|(_, e)| db_error(e))
            }
        }
    }

    /// The facts of `ucr`, when the writer fetched them for this group and nothing changed them since.
    fn facts(&self, ucr: &Ucr) -> Option<&group::ConsignmentFacts> {
        self.group.as_ref()?.facts.consignments.get(ucr.as_str())
    }

    fn forget(&mut self, ucr: &str) {
        if let Some(g) = self.group.as_mut() {
            g.facts.forget(ucr);
        }
    }

    /// The next delivery id of this transaction: taken after the group's locks (so that a
    /// consignment's deliveries keep their order across gateways), with its lookups when they
    /// foresaw it.
    fn delivery_id(&mut self) -> Result<i64, StoreError> {
        if let Some(id) = self.group.as_mut().and_then(|g| g.delivery_ids.pop_front()) {
            return Ok(id);
        }
        let n = if self.group.is_some() { ID_BLOCK } else { 1 };
        let mut ids: std::collections::VecDeque<i64> = self.rows(TAKE_DELIVERY_IDS, &[&n])?.iter().map(|r| r.get(0)).collect();
        let first = ids.pop_front().ok_or_else(|| corrupt("no delivery id"))?;
        if let Some(g) = self.group.as_mut() {
            g.delivery_ids = ids;
        }
        Ok(first)
    }

    /// Sends `opening` (a group's `BEGIN` and locks) and, in the same pipeline, fetches for the
    /// whole group what its documents will be judged on (`group.rs`).
    fn open_and_fetch_facts(&mut self, opening: Vec<Piped<'_>>, lookups: &[AcceptanceLookup]) -> Result<(), StoreError> {
        let opened = opening.len();
        if self.group.is_none() || lookups.is_empty() {
            let result = self.rt.block_on(pipeline(&self.client, &opening));
            return self.answered(result, None).map(|_| ());
        }
        let (senders, ucrs, types, hashes): (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>) = lookups
            .iter()
            .map(|l| (l.sender.as_str(), l.ucr.as_str(), l.document_type.as_str(), l.body_sha256.as_str()))
            .fold((vec![], vec![], vec![], vec![]), |mut v, (s, u, t, h)| {
                v.0.push(s);
                v.1.push(u);
                v.2.push(t);
                v.3.push(h);
                v
            });
        let deliveries: i64 = lookups.iter().map(|l| l.deliveries as i64).sum();
        let (key_senders, keys): (Vec<&str>, Vec<&str>) =
            lookups.iter().filter_map(|l| Some((l.sender.as_str(), l.key.as_deref()?))).unzip();
        let mut batch: Vec<Piped<'_>> = opening;
        let facts: Vec<Piped<'_>> = vec![
            (
                "SELECT d.sender, d.idempotency_key, d.id, d.body_sha256, r.receipt
                 FROM unnest($1::text[], $2::text[]) AS k(s, k)
                 JOIN documents d ON d.sender = k.s AND d.idempotency_key = k.k JOIN receipts r ON r.document_id = d.id",
                vec![&key_senders, &keys],
                true,
            ),
            (
                "SELECT k.s, k.u, k.t, k.h, x.id, x.body_sha256, x.receipt
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(s, u, t, h)
                 LEFT JOIN LATERAL (
                   SELECT d.id, d.body_sha256, r.receipt FROM documents d JOIN receipts r ON r.document_id = d.id
                   WHERE d.sender = k.s AND d.ucr = k.u AND d.document_type = k.t
                     AND NOT EXISTS (SELECT 1 FROM documents w WHERE w.ucr = d.ucr AND w.chain = d.chain AND w.withdrawn_at IS NOT NULL)
                   ORDER BY (d.body_sha256 = k.h) DESC, d.submitted_at LIMIT 1) AS x ON true",
                vec![&senders, &ucrs, &types, &hashes],
                true,
            ),
            (
                "SELECT ucr, state, created_at, updated_at, released_at, opened_by FROM consignments WHERE ucr = ANY($1::text[])",
                vec![&ucrs],
                true,
            ),
            (
                "SELECT k.s, k.u, k.t, (SELECT COUNT(*) FROM documents d WHERE d.sender = k.s AND d.ucr = k.u AND d.document_type = k.t)
                 FROM (SELECT DISTINCT s, u, t FROM unnest($1::text[], $2::text[], $3::text[]) AS k(s, u, t)) AS k",
                vec![&senders, &ucrs, &types],
                true,
            ),
            (TAKE_DELIVERY_IDS, vec![&deliveries], true),
        ];
        batch.extend(facts);
        let answers = self.rt.block_on(pipeline(&self.client, &batch));
        // No job runs yet: a failure here aborts the group's transaction.
        let answers: Vec<Vec<Row>> = self.answered(answers, None)?.into_iter().skip(opened).map(Answer::rows).collect();
        let Some(g) = self.group.as_mut() else { return Ok(()) };
        g.delivery_ids = answers[4].iter().map(|r| r.get(0)).collect();
        let facts = &mut g.facts;
        let earlier_at = |r: &Row, from: usize| -> Result<Option<EarlierDocument>, StoreError> {
            r.get::<_, Option<&str>>(from)
                .map(|id| Ok(EarlierDocument { id: uuid_of(id)?, body_sha256: r.get(from + 1), receipt: r.get(from + 2) }))
                .transpose()
        };
        for l in lookups {
            // Known: every UCR's row (absent or not) and every key (used or not).
            facts.consignments.entry(l.ucr.to_string()).or_default().row = Some(None);
            if let Some(key) = &l.key {
                facts.by_key.insert((l.sender.clone(), key.clone()), None);
            }
        }
        for r in &answers[0] {
            facts.by_key.insert((r.get(0), r.get(1)), earlier_at(r, 2)?);
        }
        for r in &answers[1] {
            let ucr: String = r.get(1);
            let c = facts.consignments.entry(ucr).or_default();
            c.by_identity.push(((r.get(0), r.get(2), r.get(3)), earlier_at(r, 4)?));
        }
        for r in &answers[2] {
            let record = ConsignmentRecord {
                state: parse(r.get(1), ConsignmentState::parse)?,
                created_at: r.get(2),
                updated_at: r.get(3),
                released_at: r.get(4),
            };
            facts.consignments.entry(r.get(0)).or_default().row = Some(Some((record, r.get(5))));
        }
        for r in &answers[3] {
            let ucr: String = r.get(1);
            let count = r.get::<_, i64>(3).max(0) as u64;
            facts.consignments.entry(ucr).or_default().versions.push(((r.get(0), r.get(2)), count));
        }
        Ok(())
    }
}

/// One statement of a pipeline: its text, its parameters, and whether its rows are wanted (else
/// the count of rows it changed).
type Piped<'a> = (&'a str, Vec<&'a (dyn ToSql + Sync)>, bool);

/// What a statement of a pipeline answered.
enum Answer {
    Rows(Vec<Row>),
    Changed(u64),
}

impl Answer {
    fn rows(self) -> Vec<Row> {
        match self {
            Answer::Rows(rows) => rows,
            Answer::Changed(_) => Vec::new(),
        }
    }
    fn changed(&self) -> u64 {
        match self {
            Answer::Rows(rows) => rows.len() as u64,
            Answer::Changed(n) => *n,
        }
    }
}

/// Pending statements as a pipeline's first entries.
fn piped(statements: &[group::Statement]) -> Vec<Piped<'_>> {
    statements.iter().map(|s| (s.sql, s.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect(), false)).collect()
}

/// Sends `statements` on one connection without waiting between them (tokio-postgres pipelines
/// the requests of futures polled together), in their order, and answers each one. A
/// statement's preparation is cached per connection; the first error is the answer.
async fn pipeline(client: &Object, statements: &[Piped<'_>]) -> Result<Vec<Answer>, (usize, tokio_postgres::Error)> {
    use std::future::Future;
    use std::task::Poll;
    let mut prepared = Vec::with_capacity(statements.len());
    for (i, (sql, _, _)) in statements.iter().enumerate() {
        prepared.push(client.prepare_cached(sql).await.map_err(|e| (i, e))?);
    }
    let client: &tokio_postgres::Client = client;
    type Query<'q> = Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + Send + 'q>>;
    let mut queries: Vec<Query<'_>> = prepared
        .iter()
        .zip(statements)
        .map(|(statement, (_, params, rows))| -> Query<'_> {
            if *rows {
                Box::pin(async move { client.query(statement, params).await.map(Answer::Rows) })
            } else {
                Box::pin(async move { client.execute(statement, params).await.map(Answer::Changed) })
            }
        })
        .collect();
    let mut answers: Vec<Option<Result<Answer, tokio_postgres::Error>>> = queries.iter().map(|_| None).collect();
    // Each query's request is sent on its first poll: polling them in order sends them in order.
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (query, answer) in queries.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                match query.as_mut().poll(cx) {
                    Poll::Ready(r) => *answer = Some(r),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    answers.into_iter().enumerate().map(|(i, a)| a.unwrap_or(Ok(Answer::Changed(0))).map_err(|e| (i, e))).collect()
}

impl Transactional for PgLedger {
    fn run(&mut self, statement: &str) -> Result<(), StoreError> {
        if statement.starts_with("ROLLBACK") {
            // Nothing of the transaction is left to send or to know.
            if let Some(g) = self.group.as_mut() {
                **g = GroupState::default();
            }
            let client = &self.client;
            return self.rt.block_on(client.batch_execute(statement)).map_err(db_error);
        }
        // Whatever is pending goes first, in the same round trip.
        let (pending, _) = self.group.as_mut().map(|g| g.pending.take(false)).unwrap_or_default();
        let mut batch = piped(&pending);
        batch.push((statement, Vec::new(), false));
        // Transaction statements (a commit, a release) are not a job's: a failure ends the group.
        let result = self.rt.block_on(pipeline(&self.client, &batch));
        self.answered(result, None).map(|_| ())
    }
    fn after_commit(&mut self) {
        // Positions for what this group committed, before its callers hear of it: a caller then
        // finds its rows in the streams.
        let client = &self.client;
        if let Err(e) = self.rt.block_on(async move {
            let r = sequence(client, true).await;
            if r.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            r
        }) {
            tracing::warn!(error = %e, "store: cannot give cursor positions now; the sequencer will");
        }
    }
    fn begin(&mut self, subjects: &[Subject], lookups: &[AcceptanceLookup]) -> Result<(), StoreError> {
        if self.client.is_closed() {
            // The connection broke since the last group: take a fresh one.
            self.client = self.rt.block_on(self.pool.get()).map_err(pool_error)?;
        }
        if let Some(g) = self.group.as_mut() {
            // Nothing of the last group carries over: its ids unused are dropped (this group's
            // are taken after its locks).
            **g = GroupState::default();
        }
        // One round trip opens the group: its transaction, its locks and its lookups.
        // - Each statement planned with the tables as they are now: a plan kept from when a
        //   table was nearly empty would scan it whole once it is not.
        // - One transaction-level advisory lock per subject, all taken at once and in one order
        //   (by the lock's number) on every gateway: groups sharing a subject take turns, and no
        //   two groups can each hold what the other waits for. Read committed: every statement
        //   after the locks sees what the previous holder committed. A number two subjects share
        //   only makes their groups take turns.
        let keys: Vec<String> = subjects.iter().map(Subject::key).collect();
        let mut opening: Vec<Piped<'_>> =
            vec![("BEGIN", Vec::new(), false), ("SET LOCAL plan_cache_mode = force_custom_plan", Vec::new(), false)];
        if !keys.is_empty() {
            opening.push((
                "SELECT count(pg_advisory_xact_lock(h)) FROM
                   (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS locks",
                vec![&keys],
                true,
            ));
        }
        let locked = self.open_and_fetch_facts(opening, lookups);
        if let Err(e) = locked {
            // The transaction is aborted (a lock timeout, a cancelled statement): end it, or
            // every later BEGIN on this connection would fail.
            let _ = self.run("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }
    fn mark(&mut self) -> Result<(), StoreError> {
        match self.group.as_mut() {
            Some(g) => {
                g.pending.mark();
                Ok(())
            }
            None => self.run("SAVEPOINT job"),
        }
    }
    fn keep(&mut self) -> Result<(), StoreError> {
        match self.group.as_mut() {
            Some(g) => {
                g.pending.keep();
                Ok(())
            }
            None => self.run("RELEASE SAVEPOINT job"),
        }
    }
    fn undo(&mut self) -> Result<(), StoreError> {
        let sent = match self.group.as_mut() {
            Some(g) => {
                // What the job knew may have been its own writes.
                g.facts.clear();
                g.audit_head = None;
                g.pending.undo()
            }
            None => true,
        };
        if sent {
            let client = &self.client;
            self.rt.block_on(client.batch_execute("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")).map_err(db_error)?;
        }
        Ok(())
    }
    fn transaction_ended(&self) -> bool {
        self.group.as_ref().is_some_and(|g| g.aborted)
    }
    fn ledger(&mut self) -> &mut dyn Ledger {
        self
    }
}

fn parse<T, E: std::fmt::Display>(s: &str, f: impl FnOnce(&str) -> Result<T, E>) -> Result<T, StoreError> {
    f(s).map_err(corrupt)
}

fn uuid_of(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("id {s:?}: {e}")))
}

fn earlier(row: Option<Row>) -> Result<Option<EarlierDocument>, StoreError> {
    row.map(|r| Ok(EarlierDocument { id: uuid_of(r.get(0))?, body_sha256: r.get(1), receipt: r.get(2) })).transpose()
}

const OUTBOUND_COLUMNS: &str = "d.id, d.document_id, d.agency, d.topic, doc.ucr, doc.document_type, doc.schema_version, \
     doc.schema_id, doc.origin, doc.destination, doc.sender, doc.submitted_at, COALESCE(n.body, doc.payload), d.attempts, \
     COALESCE(d.position, 0), doc.version, doc.amends, n.id, n.kind, n.created_at, d.selection";
/// Where [`OUTBOUND_COLUMNS`] come from: a delivery, its document, and its notice if it is one.
const OUTBOUND_FROM: &str =
    "deliveries d JOIN documents doc ON doc.id = d.document_id LEFT JOIN notices n ON n.id = d.notice_id";

fn outbound(r: &Row) -> Result<OutboundDelivery, StoreError> {
    let notice = match (r.get::<_, Option<&str>>(17), r.get::<_, Option<&str>>(18), r.get::<_, Option<i64>>(19)) {
        (Some(id), Some(kind), Some(at)) => Some(OutboundNotice { id: uuid_of(id)?, kind: NoticeKind::parse(kind)?, at }),
        _ => None,
    };
    Ok(OutboundDelivery {
        version: i64::from(r.get::<_, i32>(15)),
        amends: r.get::<_, Option<&str>>(16).map(uuid_of).transpose()?,
        notice,
        delivery_id: r.get(0),
        document_id: uuid_of(r.get(1))?,
        agency: parse(r.get(2), AgencyId::parse)?,
        topic: r.get(3),
        ucr: parse(r.get(4), Ucr::parse)?,
        document_type: parse(r.get(5), DocumentType::parse)?,
        schema_version: r.get(6),
        schema_id: r.get(7),
        origin: r.get(8),
        destination: r.get(9),
        sender: r.get(10),
        submitted_at: r.get(11),
        payload: r.get(12),
        attempts: r.get::<_, i32>(13).max(0) as u32,
        position: r.get(14),
        selection: r.get(20),
    })
}

/// The columns of a [`DocumentRecord`], in the order [`document_record`] reads them.
const DOCUMENT_COLUMNS: &str = "id, document_type, schema_version, origin, destination, sender, submitted_at, version, amends, \
     superseded_by, withdrawn_at, transport_mode, hs_chapter, border_post, chain";

fn document_record(r: &Row) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        id: uuid_of(r.get(0))?,
        document_type: parse(r.get(1), DocumentType::parse)?,
        schema_version: r.get(2),
        origin: r.get(3),
        destination: r.get(4),
        sender: r.get(5),
        submitted_at: r.get(6),
        version: i64::from(r.get::<_, i32>(7)),
        amends: r.get::<_, Option<&str>>(8).map(uuid_of).transpose()?,
        superseded_by: r.get::<_, Option<&str>>(9).map(uuid_of).transpose()?,
        withdrawn_at: r.get(10),
        dims: DocumentDims { transport_mode: r.get(11), hs_chapter: r.get(12), border_post: r.get(13) },
        chain: uuid_of(r.get(14))?,
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

fn consignment_times(r: &Row) -> Result<ConsignmentReleaseTimes, StoreError> {
    Ok(ConsignmentReleaseTimes {
        ucr: parse(r.get(0), Ucr::parse)?,
        owner: r.get(1),
        lodged_at: r.get(2),
        arrived_at: r.get(3),
        released_at: r.get(4),
        decided_at: r.get(5),
        outcome: r.get(6),
        document_type: r.get(7),
        origin: r.get(8),
        destination: r.get(9),
        dims: DocumentDims { transport_mode: r.get(10), hs_chapter: r.get(11), border_post: r.get(12) },
        channel: r.get(13),
        hold_ms: r.get(14),
        query_trader_ms: r.get(15),
        query_agency_ms: r.get(16),
        risk_channel: r.get(17),
        formalities: crate::store::Formalities::from_columns(r.get(18), r.get(19), r.get(20), r.get(21)),
    })
}

/// A finding as `SELECT delivery_id, at, finding, facts` reads it.
fn finding_record(r: &Row) -> FindingRecord {
    FindingRecord { delivery_id: r.get(0), at: r.get(1), irregular: r.get::<_, String>(2) == "irregularity", facts: r.get(3) }
}

fn agency_times(r: &Row, from: usize) -> Result<AgencyReleaseTimes, StoreError> {
    Ok(AgencyReleaseTimes {
        agency: parse(r.get(from), AgencyId::parse)?,
        routed_at: r.get(from + 1),
        first_answer_at: r.get(from + 2),
        decided_at: r.get(from + 3),
        decision: r.get(from + 4),
        hold_ms: r.get(from + 5),
        query_trader_ms: r.get(from + 6),
        query_agency_ms: r.get(from + 7),
        selectivity: crate::store::AgencySelectivity::from_columns(r.get(from + 8), r.get(from + 9), r.get(from + 10), r.get(from + 11))
            .map_err(|e| StoreError::Corrupt(format!("an agency's release-time facts: {e}")))?,
    })
}

fn status_event(r: &Row) -> Result<StatusEvent, StoreError> {
    Ok(StatusEvent { id: r.get(0), ucr: parse(r.get(1), Ucr::parse)?, body: r.get(2), position: r.get(3) })
}

impl Consignments for PgLedger {
    fn document_by_key(&mut self, sender: &str, key: &str) -> Result<Option<EarlierDocument>, StoreError> {
        if let Some(known) = self.group.as_ref().and_then(|g| g.facts.by_key.get(&(sender.to_owned(), key.to_owned()))) {
            return Ok(known.clone());
        }
        let row = self.row(
            "SELECT d.id, d.body_sha256, r.receipt FROM documents d JOIN receipts r ON r.document_id = d.id
             WHERE d.sender = $1 AND d.idempotency_key = $2",
            &[&sender, &key],
        )?;
        earlier(row)
    }

    fn document_by_identity(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType, body_sha256: &str)
        -> Result<Option<EarlierDocument>, StoreError> {
        if let Some(facts) = self.facts(ucr) {
            let known = facts.by_identity.iter().find(|((s, t, h), _)| s == sender && t == document_type.as_str() && h == body_sha256);
            if let Some((_, earlier)) = known {
                return Ok(earlier.clone());
            }
        }
        let row = self.row(
            "SELECT d.id, d.body_sha256, r.receipt FROM documents d JOIN receipts r ON r.document_id = d.id
             WHERE d.sender = $1 AND d.ucr = $2 AND d.document_type = $3
               AND NOT EXISTS (SELECT 1 FROM documents w WHERE w.ucr = d.ucr AND w.chain = d.chain AND w.withdrawn_at IS NOT NULL)
             ORDER BY (d.body_sha256 = $4) DESC, d.submitted_at LIMIT 1",
            &[&sender, &ucr.as_str(), &document_type.as_str(), &body_sha256],
        )?;
        earlier(row)
    }

    fn consignment_of_another(&mut self, ucr: &Ucr, sender: &str) -> Result<bool, StoreError> {
        if let Some(Some(row)) = self.facts(ucr).map(|f| f.row.as_ref()) {
            return Ok(row.as_ref().is_some_and(|(_, opener)| opener != sender));
        }
        let row = self.row("SELECT opened_by FROM consignments WHERE ucr = $1", &[&ucr.as_str()])?;
        Ok(row.is_some_and(|r| r.get::<_, &str>(0) != sender))
    }

    fn open_consignment(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis, opened_by: &str) -> Result<bool, StoreError> {
        // Known to be absent, under the group's lock on it: it is created, with the next rows.
        if let Some(Some(None)) = self.facts(ucr).map(|f| f.row.as_ref()) {
            self.forget(ucr.as_str());
            self.defer(Op::Consignment { ucr: ucr.to_string(), state: state.as_str(), at, opened_by: opened_by.to_owned() })?;
            return Ok(true);
        }
        Ok(self.exec(
            "INSERT INTO consignments (ucr, state, created_at, updated_at, opened_by) VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (ucr) DO NOTHING",
            &[&ucr.as_str(), &state.as_str(), &at, &opened_by],
        )? == 1)
    }

    fn insert_document(&mut self, doc: &NewDocument) -> Result<(), StoreError> {
        self.forget(doc.ucr.as_str());
        if let (Some(g), Some(key)) = (self.group.as_mut(), &doc.idempotency_key) {
            g.facts.by_key.remove(&(doc.sender.clone(), key.clone()));
        }
        self.defer(Op::Document(Box::new(group::DocumentRow {
            id: doc.id.to_string(),
            ucr: doc.ucr.to_string(),
            document_type: doc.document_type.to_string(),
            schema_version: doc.schema_version.to_string(),
            schema_id: doc.schema_id.clone(),
            origin: doc.origin.to_string(),
            destination: doc.destination.to_string(),
            sender: doc.sender.clone(),
            payload: doc.payload.clone(),
            submitted_at: doc.submitted_at,
            idempotency_key: doc.idempotency_key.clone(),
            body_sha256: doc.body_sha256.clone(),
            version: i32::try_from(doc.version).map_err(corrupt)?,
            amends: doc.amends.map(|a| a.to_string()),
            transport_mode: doc.dims.transport_mode.clone(),
            hs_chapter: doc.dims.hs_chapter.clone(),
            border_post: doc.dims.border_post.clone(),
        })))
    }

    fn insert_delivery(&mut self, document_id: Uuid, d: &PlannedDelivery, at: Millis) -> Result<i64, StoreError> {
        let id = self.delivery_id()?;
        self.defer(Op::Delivery {
            id,
            document_id: document_id.to_string(),
            agency: d.agency.to_string(),
            topic: d.topic.clone(),
            rule: d.rule.clone(),
            selection: d.selection.clone(),
            at,
        })?;
        Ok(id)
    }

    fn add_delivery_event(&mut self, delivery_id: i64, e: DeliveryEvent<'_>) -> Result<(), StoreError> {
        self.defer(Op::Event {
            delivery_id,
            status: e.status.to_owned(),
            at: e.at,
            source: e.source.to_owned(),
            reason: e.reason.map(str::to_owned),
            outcome: e.outcome.to_owned(),
        })
    }

    fn insert_receipt(&mut self, document_id: Uuid, receipt: &str) -> Result<(), StoreError> {
        self.defer(Op::Receipt { document_id: document_id.to_string(), receipt: receipt.to_owned() })
    }

    fn consignment_delivery_statuses(&mut self, ucr: &Ucr) -> Result<Vec<DeliveryStatus>, StoreError> {
        self.rows(
            "SELECT d.status FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE doc.ucr = $1 AND d.notice_id IS NULL AND doc.superseded_by IS NULL AND doc.withdrawn_at IS NULL",
            &[&ucr.as_str()],
        )?
        .iter()
        .map(|r| parse(r.get(0), DeliveryStatus::parse))
        .collect()
    }

    fn consignment(&mut self, ucr: &Ucr) -> Result<Option<ConsignmentRecord>, StoreError> {
        if let Some(Some(row)) = self.facts(ucr).map(|f| f.row.as_ref()) {
            return Ok(row.as_ref().map(|(record, _)| record.clone()));
        }
        let row = self.row("SELECT state, created_at, updated_at, released_at FROM consignments WHERE ucr = $1", &[&ucr.as_str()])?;
        row.map(|r| {
            Ok(ConsignmentRecord {
                state: parse(r.get(0), ConsignmentState::parse)?,
                created_at: r.get(1),
                updated_at: r.get(2),
                released_at: r.get(3),
            })
        })
        .transpose()
    }

    fn set_consignment_state(&mut self, ucr: &Ucr, state: ConsignmentState, at: Millis) -> Result<(), StoreError> {
        let released_at = (state == ConsignmentState::Released).then_some(at);
        self.forget(ucr.as_str());
        self.defer(Op::ConsignmentChange { ucr: ucr.to_string(), state: Some(state.as_str()), at, released_at })
    }

    fn touch_consignment(&mut self, ucr: &Ucr, at: Millis) -> Result<(), StoreError> {
        self.forget(ucr.as_str());
        self.defer(Op::ConsignmentChange { ucr: ucr.to_string(), state: None, at, released_at: None })
    }

    fn documents_of(&mut self, ucr: &Ucr) -> Result<Vec<DocumentRecord>, StoreError> {
        self.rows(&format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE ucr = $1 ORDER BY submitted_at, id"), &[&ucr.as_str()])?
            .iter()
            .map(document_record)
            .collect()
    }

    fn document_chains(&mut self, ucr: &Ucr) -> Result<Vec<DocumentChain>, StoreError> {
        self.rows(
            "SELECT DISTINCT ON (chain) chain, id, version, COUNT(*) OVER (PARTITION BY chain) FROM documents
             WHERE ucr = $1 ORDER BY chain, version DESC",
            &[&ucr.as_str()],
        )?
        .iter()
        .map(|r| {
            Ok(DocumentChain {
                chain: uuid_of(r.get(0))?,
                latest: uuid_of(r.get(1))?,
                latest_version: i64::from(r.get::<_, i32>(2)),
                versions: r.get(3),
            })
        })
        .collect()
    }

    fn chain_versions(&mut self, ucr: &Ucr, chain: Uuid, below: i64, limit: usize) -> Result<Vec<DocumentRecord>, StoreError> {
        let below = i32::try_from(below).unwrap_or(i32::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE ucr = $1 AND chain = $2 AND version < $3 ORDER BY version DESC LIMIT $4"),
            &[&ucr.as_str(), &chain.to_string(), &below, &limit],
        )?
        .iter()
        .map(document_record)
        .collect()
    }

    fn identity_versions(&mut self, sender: &str, ucr: &Ucr, document_type: &DocumentType) -> Result<u64, StoreError> {
        if let Some(facts) = self.facts(ucr) {
            if let Some((_, n)) = facts.versions.iter().find(|((s, t), _)| s == sender && t == document_type.as_str()) {
                return Ok(*n);
            }
        }
        let row = self.row(
            "SELECT COUNT(*) FROM documents WHERE sender = $1 AND ucr = $2 AND document_type = $3",
            &[&sender, &ucr.as_str(), &document_type.as_str()],
        )?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn agency_first_times(&mut self, ucr: &Ucr) -> Result<Vec<(AgencyId, Millis, Option<Millis>)>, StoreError> {
        self.rows(
            "SELECT d.agency, MIN(d.created_at), MIN(d.first_answer_at) FROM documents doc
             JOIN deliveries d ON d.document_id = doc.id AND d.notice_id IS NULL
             WHERE doc.ucr = $1 GROUP BY d.agency ORDER BY MIN(d.id)",
            &[&ucr.as_str()],
        )?
        .iter()
        .map(|r| Ok((parse(r.get(0), AgencyId::parse)?, r.get(1), r.get(2))))
        .collect()
    }

    fn document(&mut self, id: Uuid) -> Result<Option<StoredDocument>, StoreError> {
        self.row(&format!("SELECT {DOCUMENT_COLUMNS}, ucr, payload, body_sha256 FROM documents WHERE id = $1"), &[&id.to_string()])?
            .map(|r| {
                Ok(StoredDocument {
                    record: document_record(&r)?,
                    ucr: parse(r.get(15), Ucr::parse)?,
                    payload: r.get(16),
                    body_sha256: r.get(17),
                })
            })
            .transpose()
    }

    fn receipt_of(&mut self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(self.row("SELECT receipt FROM receipts WHERE document_id = $1", &[&id.to_string()])?.map(|r| r.get(0)))
    }

    fn supersede(&mut self, old: Uuid, new: Uuid) -> Result<(), StoreError> {
        self.exec("UPDATE documents SET superseded_by = $2 WHERE id = $1", &[&old.to_string(), &new.to_string()])?;
        Ok(())
    }

    fn withdraw_document(&mut self, id: Uuid, at: Millis) -> Result<(), StoreError> {
        self.exec("UPDATE documents SET withdrawn_at = $2 WHERE id = $1", &[&id.to_string(), &at])?;
        Ok(())
    }

    fn current_documents(&mut self, ucr: &Ucr) -> Result<u64, StoreError> {
        let row = self.row(
            "SELECT COUNT(*) FROM documents WHERE ucr = $1 AND superseded_by IS NULL AND withdrawn_at IS NULL",
            &[&ucr.as_str()],
        )?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn insert_notice(&mut self, id: Uuid, document_id: Uuid, kind: NoticeKind, body: &str, at: Millis) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO notices (id, document_id, kind, body, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&id.to_string(), &document_id.to_string(), &kind.as_str(), &body, &at],
        )?;
        Ok(())
    }

    fn insert_notice_delivery(&mut self, notice_id: Uuid, document_id: Uuid, agency: &AgencyId, topic: &str, at: Millis)
        -> Result<i64, StoreError> {
        let row = self.write_rows(
            "INSERT INTO deliveries (document_id, agency, topic, rule, status, created_at, notice_id)
             VALUES ($1, $2, $3, 'notice', 'pending', $4, $5) RETURNING id",
            &[&document_id.to_string(), &agency.as_str(), &topic, &at, &notice_id.to_string()],
        )?;
        row.into_iter().next().map(|r| r.get(0)).ok_or_else(|| corrupt("an inserted delivery without an id"))
    }

    fn deliveries_of(&mut self, document_id: Uuid) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.rows(
            "SELECT d.id, d.agency, d.topic, d.status, d.created_at, d.dispatched_at, d.first_answer_at, d.attempts, d.last_error,
                    d.selection, i.performed, i.finding, i.revenue, i.code
             FROM deliveries d LEFT JOIN inspections i ON i.delivery_id = d.id
             WHERE d.document_id = $1 AND d.notice_id IS NULL ORDER BY d.id",
            &[&document_id.to_string()],
        )?
        .iter()
        .map(|r| {
            Ok(DeliveryRecord {
                id: r.get(0),
                agency: parse(r.get(1), AgencyId::parse)?,
                topic: r.get(2),
                status: parse(r.get(3), DeliveryStatus::parse)?,
                routed_at: r.get(4),
                dispatched_at: r.get(5),
                first_answer_at: r.get(6),
                attempts: r.get::<_, i32>(7).max(0) as u32,
                last_error: r.get(8),
                selection: r.get(9),
                inspection: r
                    .get::<_, Option<bool>>(10)
                    .map(|performed| -> Result<Inspection, StoreError> {
                        Ok(Inspection {
                            performed,
                            finding: r.get::<_, Option<&str>>(11).map(Finding::parse).transpose().map_err(StoreError::Corrupt)?,
                            revenue: r.get(12),
                            code: r.get(13),
                        })
                    })
                    .transpose()?,
            })
        })
        .collect()
    }

    fn history_of(&mut self, delivery_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        // The delivery's rule and creation time first (order 0), then its stored entries.
        let rows = self.rows(
            "SELECT NULL, created_at, NULL, rule, NULL, 0::bigint FROM deliveries WHERE id = $1 AND notice_id IS NULL
             UNION ALL
             SELECT status, at, source, reason, outcome, id FROM delivery_events WHERE delivery_id = $1
             ORDER BY 6",
            &[&delivery_id],
        )?;
        let mut routing = None;
        let mut stored = Vec::new();
        for r in &rows {
            if r.get::<_, i64>(5) == 0 {
                routing = Some((r.get::<_, String>(3), r.get::<_, i64>(1)));
                continue;
            }
            stored.push(HistoryEntry { status: r.get(0), at: rfc3339(r.get(1)), at_ms: r.get(1), source: r.get(2), reason: r.get(3), outcome: r.get(4) });
        }
        Ok(HistoryEntry::history(routing.as_ref().map(|(rule, at)| (rule.as_str(), *at)), stored))
    }
}

impl IndicatorFacts for PgLedger {
    fn save_release_times(&mut self, c: &ConsignmentReleaseTimes, agencies: &[AgencyReleaseTimes]) -> Result<(), StoreError> {
        self.defer(Op::ReleaseTimes(Box::new(c.clone()), agencies.to_vec()))
    }

    fn release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<ConsignmentReleaseTimes>, StoreError> {
        let agency = q.agency.as_ref().map(|a| a.as_str());
        self.rows(
            &format!(
                "SELECT {RELEASE_COLUMNS} FROM release_times c
                 WHERE c.lodged_at >= $1 AND c.lodged_at < $2 AND ($3::TEXT IS NULL OR c.owner = $3)
                   AND ($4::TEXT IS NULL OR EXISTS (SELECT 1 FROM agency_release_times a WHERE a.ucr = c.ucr AND a.agency = $4))
                 ORDER BY c.lodged_at, c.ucr"
            ),
            &[&q.from, &q.to, &q.owner, &agency],
        )?
        .iter()
        .map(consignment_times)
        .collect()
    }

    fn agency_release_times(&mut self, q: &ReleaseTimesQuery) -> Result<Vec<(ConsignmentReleaseTimes, AgencyReleaseTimes)>, StoreError> {
        let agency = q.agency.as_ref().map(|a| a.as_str());
        self.rows(
            &format!(
                "SELECT {RELEASE_COLUMNS}, {AGENCY_COLUMNS}
                 FROM agency_release_times a JOIN release_times c ON c.ucr = a.ucr
                 WHERE a.lodged_at >= $1 AND a.lodged_at < $2 AND ($3::TEXT IS NULL OR c.owner = $3) AND ($4::TEXT IS NULL OR a.agency = $4)
                 ORDER BY a.lodged_at, a.ucr, a.agency"
            ),
            &[&q.from, &q.to, &q.owner, &agency],
        )?
        .iter()
        .map(|r| Ok((consignment_times(r)?, agency_times(r, AGENCY_AFTER_RELEASE)?)))
        .collect()
    }

    fn release_time_changes_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Ucr)>, StoreError> {
        self.rows(
            "SELECT position, ucr FROM release_time_changes WHERE position > $1 ORDER BY position LIMIT $2",
            &[&after, &(limit as i64)],
        )?
        .iter()
        .map(|r| Ok((r.get(0), parse(r.get(1), Ucr::parse)?)))
        .collect()
    }

    fn consignments_without_release_times(&mut self, after: &str, limit: usize) -> Result<Vec<Ucr>, StoreError> {
        self.rows(
            "SELECT c.ucr FROM consignments c LEFT JOIN release_times r ON r.ucr = c.ucr
             WHERE c.ucr > $1 AND (r.ucr IS NULL OR r.documents IS NULL
                 OR EXISTS (SELECT 1 FROM agency_release_times a WHERE a.ucr = c.ucr AND a.selected_channel IS NULL))
             ORDER BY c.ucr LIMIT $2",
            &[&after, &(limit as i64)],
        )?
        .iter()
        .map(|r| parse(r.get(0), Ucr::parse))
        .collect()
    }

    fn latest_release_time_change(&mut self) -> Result<i64, StoreError> {
        Ok(self.row("SELECT COALESCE(MAX(position), 0) FROM release_time_changes", &[])?.map_or(0, |r| r.get(0)))
    }

    fn release_times_of(&mut self, ucrs: Option<&[Ucr]>) -> Result<ReleaseTimeFacts, StoreError> {
        // Two statements for the two questions: one prepared plan for "some" cannot use the
        // index when it also has to answer "all" (a generic plan scans the whole table).
        let (consignments, agencies) = match ucrs {
            Some(ucrs) => {
                let keys: Vec<&str> = ucrs.iter().map(|u| u.as_str()).collect();
                (
                    self.rows(&format!("SELECT {RELEASE_COLUMNS} FROM release_times c WHERE c.ucr = ANY($1)"), &[&keys])?,
                    self.rows(&format!("SELECT a.ucr, {AGENCY_COLUMNS} FROM agency_release_times a WHERE a.ucr = ANY($1)"), &[&keys])?,
                )
            }
            None => (
                self.rows(&format!("SELECT {RELEASE_COLUMNS} FROM release_times c"), &[])?,
                self.rows(&format!("SELECT a.ucr, {AGENCY_COLUMNS} FROM agency_release_times a"), &[])?,
            ),
        };
        let consignments = consignments.iter().map(consignment_times).collect::<Result<Vec<_>, _>>()?;
        let agencies = agencies
            .iter()
            .map(|r| Ok::<_, StoreError>((parse(r.get(0), Ucr::parse)?, agency_times(r, 1)?)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((consignments, agencies))
    }
}

impl Answers for PgLedger {
    fn document_ucr(&mut self, document_id: Uuid) -> Result<Option<Ucr>, StoreError> {
        self.row("SELECT ucr FROM documents WHERE id = $1", &[&document_id.to_string()])?
            .map(|r| parse(r.get(0), Ucr::parse))
            .transpose()
    }

    fn delivery_to(&mut self, document_id: Uuid, agency: &AgencyId) -> Result<Option<DeliveryState>, StoreError> {
        self.row(
            "SELECT d.id, d.status, d.first_answer_at, d.created_at, doc.superseded_by IS NULL AND doc.withdrawn_at IS NULL
             FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE d.document_id = $1 AND d.agency = $2 AND d.notice_id IS NULL",
            &[&document_id.to_string(), &agency.as_str()],
        )?
        .map(|r| {
            Ok(DeliveryState {
                id: r.get(0),
                status: parse(r.get(1), DeliveryStatus::parse)?,
                first_answer_at: r.get(2),
                routed_at: r.get(3),
                document_current: r.get(4),
            })
        })
        .transpose()
    }

    fn record_answer(&mut self, delivery_id: i64, status: DeliveryStatus, at: Millis, received: bool) -> Result<(), StoreError> {
        // Sent with the next read or the commit, after its delivery's row: no fact of the group
        // follows a delivery's status, so every one stays known (sent at once, it made each
        // later document of a group of de minimis parcels read its facts again).
        self.defer(Op::Answer { delivery_id, status: status.as_str(), at, received })
    }

    fn note_first_answer(&mut self, delivery_id: i64, at: Millis) -> Result<(), StoreError> {
        self.exec("UPDATE deliveries SET first_answer_at = COALESCE(first_answer_at, $2) WHERE id = $1", &[&delivery_id, &at])?;
        Ok(())
    }

    fn record_inspection(&mut self, delivery_id: i64, i: &Inspection, at: Millis, facts: Option<&str>) -> Result<(), StoreError> {
        let finding = i.finding.map(Finding::as_str);
        self.exec(
            "INSERT INTO inspections (delivery_id, at, performed, finding, revenue, code, facts) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (delivery_id) DO UPDATE SET at = EXCLUDED.at, performed = EXCLUDED.performed, finding = EXCLUDED.finding,
                 revenue = EXCLUDED.revenue, code = EXCLUDED.code, facts = EXCLUDED.facts",
            &[&delivery_id, &at, &i.performed, &finding, &i.revenue, &i.code, &facts],
        )?;
        Ok(())
    }
}

impl Outbox for PgLedger {
    fn due_deliveries(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<OutboundDelivery>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOUND_COLUMNS}
             FROM {OUTBOUND_FROM}
             WHERE d.dispatched_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $2
               AND NOT EXISTS (
                   SELECT 1 FROM documents hd JOIN deliveries h ON h.document_id = hd.id
                   WHERE hd.ucr = doc.ucr AND h.topic = d.topic AND h.id < d.id AND h.dispatched_at IS NULL
                     AND (h.failed_at IS NOT NULL OR h.next_attempt_at > $2))
               AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.ucr = doc.ucr AND c.instance <> $3 AND c.until > $2)
             ORDER BY d.id LIMIT $1"
        );
        self.rows(&sql, &[&(limit as i64), &now, &instance])?.iter().map(outbound).collect()
    }

    fn agency_deliveries(&mut self, agency: &AgencyId, after: i64, limit: usize, max_bytes: usize) -> Result<Vec<OutboundDelivery>, StoreError> {
        // The page's rows by their payloads' sizes first, then the payloads of those that fit.
        let sizes = self.rows(
            &format!("SELECT d.id, octet_length(COALESCE(n.body, doc.payload)) FROM {OUTBOUND_FROM}
             WHERE d.agency = $1 AND d.position > $2 ORDER BY d.position LIMIT $3"),
            &[&agency.as_str(), &after, &(limit as i64)],
        )?;
        let (mut ids, mut bytes) = (Vec::new(), 0usize);
        for r in &sizes {
            if bytes >= max_bytes {
                break;
            }
            ids.push(r.get::<_, i64>(0));
            bytes += r.get::<_, i32>(1).max(0) as usize;
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM}
             WHERE d.id = ANY($1) ORDER BY d.position"
        );
        self.rows(&sql, &[&ids])?.iter().map(outbound).collect()
    }

    fn outbox_backlog(&mut self) -> Result<u64, StoreError> {
        let row = self.row("SELECT COUNT(*) FROM deliveries WHERE dispatched_at IS NULL AND failed_at IS NULL", &[])?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn delivery_place(&mut self, delivery_id: i64) -> Result<Option<DeliveryPlace>, StoreError> {
        self.row(
            "SELECT d.document_id, doc.ucr, d.agency, d.topic FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE d.id = $1",
            &[&delivery_id],
        )?
        .map(|r| Ok(DeliveryPlace { id: delivery_id, document_id: r.get(0), ucr: parse(r.get(1), Ucr::parse)?, agency: r.get(2), topic: r.get(3) }))
        .transpose()
    }

    fn mark_dispatched(&mut self, deliveries: &[(i64, Millis)]) -> Result<Vec<Option<DeliveryPlace>>, StoreError> {
        let (ids, ats): (Vec<i64>, Vec<Millis>) = deliveries.iter().copied().unzip();
        // Every delivery in one statement: the pending ones become dispatched (and say where
        // they are); the others only get their dispatch time, if they had none.
        let rows = self.write_rows(
            "WITH confirmed AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS c(id, at)),
                  published AS (
                    UPDATE deliveries d SET status = 'dispatched', dispatched_at = COALESCE(d.dispatched_at, c.at)
                    FROM confirmed c, documents doc WHERE d.id = c.id AND d.status = 'pending' AND doc.id = d.document_id
                    RETURNING d.id, d.document_id, doc.ucr, d.agency, d.topic),
                  late AS (
                    UPDATE deliveries d SET dispatched_at = COALESCE(d.dispatched_at, c.at)
                    FROM confirmed c WHERE d.id = c.id AND d.status <> 'pending')
             SELECT id, document_id, ucr, agency, topic FROM published",
            &[&ids, &ats],
        )?;
        let mut places: std::collections::HashMap<i64, DeliveryPlace> = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get(0);
            places.insert(id, DeliveryPlace { id, document_id: r.get(1), ucr: parse(r.get(2), Ucr::parse)?, agency: r.get(3), topic: r.get(4) });
        }
        Ok(ids.iter().map(|id| places.remove(id)).collect())
    }

    fn record_refusal(&mut self, delivery_id: i64, error: &str, next_attempt_at: Millis) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
             WHERE id = $1 AND dispatched_at IS NULL AND failed_at IS NULL",
            &[&delivery_id, &next_attempt_at, &error],
        )? == 1)
    }

    fn mark_failed(&mut self, delivery_id: i64, at: Millis, error: &str) -> Result<bool, StoreError> {
        Ok(self.exec(
            // A delivery its agency's standing instruction released before it was published keeps
            // that decision: it leaves the outbox for the failed list all the same.
            "UPDATE deliveries SET status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, failed_at = $2,
                                   attempts = attempts + 1, last_error = $3
             WHERE id = $1 AND dispatched_at IS NULL AND failed_at IS NULL",
            &[&delivery_id, &at, &error],
        )? == 1)
    }

    fn failed_at(&mut self, delivery_id: i64) -> Result<Option<Option<Millis>>, StoreError> {
        Ok(self.row("SELECT failed_at FROM deliveries WHERE id = $1", &[&delivery_id])?.map(|r| r.get(0)))
    }

    fn failed_deliveries(&mut self, agency: Option<&AgencyId>) -> Result<Vec<FailedDelivery>, StoreError> {
        let agency = agency.map(|a| a.as_str());
        self.rows(
            "SELECT d.id, d.document_id, doc.ucr, d.agency, d.topic, d.attempts, d.last_error, d.failed_at
             FROM deliveries d JOIN documents doc ON doc.id = d.document_id
             WHERE d.failed_at IS NOT NULL AND ($1::text IS NULL OR d.agency = $1) ORDER BY d.id",
            &[&agency],
        )?
        .iter()
        .map(|r| {
            Ok(FailedDelivery {
                delivery_id: r.get(0),
                document_id: uuid_of(r.get(1))?,
                ucr: parse(r.get(2), Ucr::parse)?,
                agency: parse(r.get(3), AgencyId::parse)?,
                topic: r.get(4),
                attempts: r.get::<_, i32>(5).max(0) as u32,
                last_error: r.get(6),
                failed_at: r.get::<_, Option<i64>>(7).map(rfc3339),
            })
        })
        .collect()
    }

    fn requeue_failed(&mut self, delivery_id: i64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE deliveries SET status = CASE WHEN status = 'failed' THEN 'pending' ELSE status END, failed_at = NULL, attempts = 0, next_attempt_at = 0
             WHERE id = $1 AND failed_at IS NOT NULL",
            &[&delivery_id],
        )? == 1)
    }

    fn delivery_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        Ok(self
            .rows("SELECT agency, status, COUNT(*) FROM deliveries GROUP BY agency, status ORDER BY agency, status", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2).max(0) as u64))
            .collect())
    }

    fn claim_consignment(&mut self, ucr: &Ucr, instance: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO outbox_claims (ucr, instance, until) VALUES ($1, $2, $3)
             ON CONFLICT (ucr) DO UPDATE SET instance = excluded.instance, until = excluded.until
             WHERE outbox_claims.instance = excluded.instance OR outbox_claims.until <= $4",
            &[&ucr.as_str(), &instance, &until, &now],
        )? == 1)
    }

    fn release_claims(&mut self, instance: &str) -> Result<u64, StoreError> {
        self.exec("UPDATE webhooks SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = $1", &[&instance])?;
        self.exec("DELETE FROM outbox_claims WHERE instance = $1", &[&instance])
    }

    fn claims_held(&mut self, instance: &str, now: Millis) -> Result<u64, StoreError> {
        Ok(self
            .row("SELECT COUNT(*) FROM outbox_claims WHERE instance = $1 AND until > $2", &[&instance, &now])?
            .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }
}

impl StatusEvents for PgLedger {
    fn queue_status_event(&mut self, ucr: &Ucr, body: &str, at: Millis) -> Result<(), StoreError> {
        self.defer(Op::Status { ucr: ucr.to_string(), body: body.to_owned(), at })
    }

    fn unpublished_status_events(&mut self, instance: &str, limit: usize, now: Millis) -> Result<Vec<StatusEvent>, StoreError> {
        self.rows(
            "SELECT s.id, s.ucr, s.body, COALESCE(s.position, 0) FROM status_outbox s WHERE s.published_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.ucr = s.ucr AND c.instance <> $2 AND c.until > $3)
             ORDER BY s.id LIMIT $1",
            &[&(limit as i64), &instance, &now],
        )?
            .iter()
            .map(status_event)
            .collect()
    }

    fn mark_status_published(&mut self, ids: &[i64], at: Millis) -> Result<(), StoreError> {
        self.exec("UPDATE status_outbox SET published_at = $2 WHERE id = ANY($1)", &[&ids, &at])?;
        Ok(())
    }

    fn status_events_after(&mut self, sender: Option<&str>, after: i64, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        self.rows(
            match sender {
                // By the owner's index: what it costs is what it returns.
                Some(_) => "SELECT id, ucr, body, position FROM status_outbox WHERE owner = $2 AND position > $1 ORDER BY position LIMIT $3",
                None => "SELECT id, ucr, body, position FROM status_outbox WHERE position > $1 AND $2::text IS NULL ORDER BY position LIMIT $3",
            },
            &[&after, &sender, &(limit as i64)],
        )?
        .iter()
        .map(status_event)
        .collect()
    }

    fn latest_status_event(&mut self) -> Result<i64, StoreError> {
        Ok(self.row("SELECT COALESCE(MAX(position), 0) FROM status_outbox", &[])?.map_or(0, |r| r.get(0)))
    }
}

impl WebhookRegistry for PgLedger {
    fn insert_webhook(&mut self, id: Uuid, participant: &str, url: &str, secret: &str, at: Millis, cursor: i64, max: usize)
        -> Result<bool, StoreError> {
        // Into the lowest free slot of 1..=max; the constraint UNIQUE (participant, slot) refuses
        // a slot another gateway takes at the same moment, and the next free one is tried.
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        // A limit lowered since: slots above it may still be held.
        let full = self.row("SELECT COUNT(*) >= $2 FROM webhooks WHERE participant = $1", &[&participant, &(max as i64)])?;
        if full.is_none_or(|r| r.get::<_, bool>(0)) {
            return Ok(false);
        }
        for _ in 0..max.max(1) {
            let added = self.exec(
                "INSERT INTO webhooks (id, participant, url, secret, created_at, cursor, slot)
                 SELECT $1, $2, $3, $4, $5, $6, s FROM generate_series(1, $7::int) AS s
                  WHERE NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.participant = $2 AND w.slot = s)
                  ORDER BY s LIMIT 1
                 ON CONFLICT (participant, slot) DO NOTHING",
                &[&id.to_string(), &participant, &url, &secret, &at, &cursor, &max],
            )?;
            if added == 1 {
                return Ok(true);
            }
            let full = self.row("SELECT COUNT(*) >= $2 FROM webhooks WHERE participant = $1", &[&participant, &(max as i64)])?;
            if full.is_none_or(|r| r.get::<_, bool>(0)) {
                return Ok(false);
            }
        }
        Ok(false)
    }

    fn webhooks_of(&mut self, participant: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        self.rows(
            "SELECT id, url, created_at, cursor, attempts, last_error, next_attempt_at FROM webhooks WHERE participant = $1 ORDER BY created_at, id",
            &[&participant],
        )?
        .iter()
        .map(|r| {
            Ok(WebhookRecord {
                id: uuid_of(r.get(0))?,
                url: r.get(1),
                created_at: r.get(2),
                cursor: r.get(3),
                attempts: r.get::<_, i32>(4).max(0) as u32,
                last_error: r.get(5),
                next_attempt_at: r.get(6),
            })
        })
        .collect()
    }

    fn delete_webhook(&mut self, participant: &str, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM webhooks WHERE id = $1 AND participant = $2", &[&id.to_string(), &participant])? > 0)
    }

    fn due_webhooks(&mut self, instance: &str, now: Millis) -> Result<Vec<WebhookTarget>, StoreError> {
        self.rows(
            "SELECT id, participant, url, secret, cursor, attempts FROM webhooks
             WHERE next_attempt_at <= $1 AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_until <= $1)
             ORDER BY next_attempt_at, id",
            &[&now, &instance],
        )?
        .iter()
        .map(|r| {
            Ok(WebhookTarget {
                id: uuid_of(r.get(0))?,
                participant: r.get(1),
                url: r.get(2),
                secret: crate::config::Secret::new(r.get(3)),
                cursor: r.get(4),
                attempts: r.get::<_, i32>(5).max(0) as u32,
            })
        })
        .collect()
    }

    fn claim_webhooks(&mut self, ids: &[Uuid], instance: &str, now: Millis, until: Millis) -> Result<Vec<Uuid>, StoreError> {
        // Each claim is one row's conditional update; two gateways claiming the same webhook at
        // once: the second waits for the first's commit, then finds it taken.
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.write_rows(
            "UPDATE webhooks SET claimed_by = $2, claimed_until = $4
              WHERE id = ANY($1) AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_until <= $3)
             RETURNING id",
            &[&ids, &instance, &now, &until],
        )?
        .iter()
        .map(|r| uuid_of(r.get(0)))
        .collect()
    }

    fn webhook_delivered(&mut self, id: Uuid, cursor: i64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE webhooks SET cursor = GREATEST(cursor, $2), attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = $1",
            &[&id.to_string(), &cursor],
        )? > 0)
    }

    fn webhook_failed(&mut self, id: Uuid, error: &str, next_attempt_at: Millis) -> Result<(), StoreError> {
        self.exec(
            "UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            &[&id.to_string(), &next_attempt_at, &error],
        )?;
        Ok(())
    }
}

impl AuditLog for PgLedger {
    fn audit_chain(&mut self) -> String {
        self.chain.to_string()
    }

    fn audit_head(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        if let Some(head) = self.group.as_ref().and_then(|g| g.audit_head.clone()) {
            return Ok(Some(head));
        }
        let chain: &str = &self.chain.clone();
        let head: Option<(i64, String)> =
            self.row("SELECT seq, hash FROM audit_log WHERE chain = $1 ORDER BY seq DESC LIMIT 1", &[&chain])?.map(|r| (r.get(0), r.get(1)));
        if let Some(g) = self.group.as_mut() {
            g.audit_head = head.clone();
        }
        Ok(head)
    }

    fn audit_heads(&mut self) -> Result<Vec<ChainHead>, StoreError> {
        Ok(self
            .rows("SELECT DISTINCT ON (chain) chain, seq, hash FROM audit_log ORDER BY chain, seq DESC", &[])?
            .iter()
            .map(|r| ChainHead { chain: r.get(0), seq: r.get(1), hash: r.get(2) })
            .collect())
    }

    fn insert_audit_record(&mut self, r: &AuditRecord) -> Result<(), StoreError> {
        // Only this writer appends to its chain: what it appends is the chain's head.
        if let Some(g) = self.group.as_mut() {
            g.audit_head = Some((r.seq, r.hash.clone()));
        }
        self.defer(Op::Audit(Box::new(r.clone())))
    }

    fn audit_records(&mut self) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self
            .rows("SELECT chain, seq, at, participant, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY chain, seq", &[])?
            .iter()
            .map(|r| AuditRecord {
                chain: r.get(0),
                seq: r.get(1),
                at: r.get(2),
                participant: r.get(3),
                action: r.get(4),
                subject: r.get(5),
                detail: r.get(6),
                prev_hash: r.get(7),
                hash: r.get(8),
            })
            .collect())
    }
}

impl RiskRuleSets for PgLedger {
    fn save_risk_rules(&mut self, at: Millis, changed_by: &str, reason: &str, rules: &str) -> Result<i64, StoreError> {
        // Written under `Subject::RiskRules`'s lock, so gateways take turns; the key is the last guard.
        let row = self.write_rows(
            "INSERT INTO risk_rule_sets (version, at, changed_by, reason, rules)
             SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4 FROM risk_rule_sets RETURNING version",
            &[&at, &changed_by, &reason, &rules],
        )?;
        row.first().map(|r| r.get(0)).ok_or_else(|| StoreError::Corrupt("a risk rule set was kept without its version".into()))
    }

    fn latest_risk_rules(&mut self) -> Result<Option<RiskRuleSet>, StoreError> {
        Ok(self
            .row("SELECT version, at, changed_by, reason, rules FROM risk_rule_sets ORDER BY version DESC LIMIT 1", &[])?
            .map(|r| RiskRuleSet { version: r.get(0), at: r.get(1), changed_by: r.get(2), reason: r.get(3), rules: r.get(4) }))
    }
}

impl RiskLearning for PgLedger {
    fn findings_after(&mut self, after: (Millis, i64), limit: usize) -> Result<Vec<FindingRecord>, StoreError> {
        Ok(self
            .rows(
                "SELECT delivery_id, at, finding, facts FROM inspections
                  WHERE (at, delivery_id) > ($1, $2) AND performed AND finding IS NOT NULL AND facts IS NOT NULL
                  ORDER BY at, delivery_id LIMIT $3",
                &[&after.0, &after.1, &(limit as i64)],
            )?
            .iter()
            .map(finding_record)
            .collect())
    }

    fn findings_of_sender(&mut self, sender: Option<&str>, from: Millis, to: Millis, limit: usize) -> Result<Vec<FindingRecord>, StoreError> {
        Ok(self
            .rows(
                "SELECT i.delivery_id, i.at, i.finding, i.facts
                   FROM inspections i JOIN deliveries d ON d.id = i.delivery_id JOIN documents doc ON doc.id = d.document_id
                  WHERE i.at >= $2 AND i.at < $3 AND i.performed AND i.finding IS NOT NULL AND i.facts IS NOT NULL AND ($1::TEXT IS NULL OR doc.sender = $1)
                  ORDER BY i.at, i.delivery_id LIMIT $4",
                &[&sender, &from, &to, &(limit as i64)],
            )?
            .iter()
            .map(finding_record)
            .collect())
    }

    fn save_risk_model(&mut self, trained_at: Millis, trained_by: &str, live: bool, model: &str) -> Result<i64, StoreError> {
        // Written under `Subject::RiskModels`'s lock, so gateways take turns; the key is the last guard.
        if live {
            self.exec("UPDATE risk_models SET live = false WHERE live", &[])?;
        }
        let row = self.write_rows(
            "INSERT INTO risk_models (version, trained_at, trained_by, live, model)
             SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4 FROM risk_models RETURNING version",
            &[&trained_at, &trained_by, &live, &model],
        )?;
        row.first().map(|r| r.get(0)).ok_or_else(|| StoreError::Corrupt("a risk model was kept without its version".into()))
    }

    fn selection_outcomes(&mut self, from: Millis, to: Millis, agency: Option<&AgencyId>, limit: usize)
        -> Result<Vec<SelectionOutcome>, StoreError> {
        let agency = agency.map(AgencyId::as_str);
        self.rows(
            "SELECT d.agency, d.created_at, d.selection, CASE WHEN i.performed THEN i.finding END, i.revenue
               FROM deliveries d LEFT JOIN inspections i ON i.delivery_id = d.id
              WHERE d.created_at >= $1 AND d.created_at < $2 AND d.selection IS NOT NULL AND ($3::text IS NULL OR d.agency = $3)
              ORDER BY d.id LIMIT $4",
            &[&from, &to, &agency, &(limit as i64)],
        )?
        .iter()
        .map(|r| {
            let agency: String = r.get(0);
            let finding: Option<String> = r.get(3);
            Ok(SelectionOutcome {
                agency: AgencyId::parse(&agency).map_err(|e| StoreError::Corrupt(format!("delivery agency {agency:?}: {e}")))?,
                at: r.get(1),
                selection: r.get(2),
                finding: finding.as_deref().map(Finding::parse).transpose().map_err(StoreError::Corrupt)?,
                revenue: r.get(4),
            })
        })
        .collect()
    }

    fn live_risk_model(&mut self) -> Result<Option<RiskModelRecord>, StoreError> {
        Ok(self
            .row("SELECT version, trained_at, trained_by, live, model FROM risk_models WHERE live ORDER BY version DESC LIMIT 1", &[])?
            .map(|r| RiskModelRecord { version: r.get(0), trained_at: r.get(1), trained_by: r.get(2), live: r.get(3), model: r.get(4) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A fresh database on the test command's PostgreSQL server (`VENTANILLA_TEST_POSTGRES`,
    /// an administrator's URL), for each case.
    pub(crate) async fn fresh_database() -> String {
        let admin = std::env::var("VENTANILLA_TEST_POSTGRES")
            .expect("VENTANILLA_TEST_POSTGRES is not set: run the suite with scripts/test.sh, which starts PostgreSQL");
        let config: tokio_postgres::Config = admin.parse().expect("an administrator's URL");
        let (client, connection) = config.connect(NoTls).await.expect("the test PostgreSQL server answers");
        tokio::spawn(connection);
        let name = format!("t{}", Uuid::now_v7().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("a database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        format!("{base}/{name}")
    }

    async fn open() -> (Arc<dyn Store>, ()) {
        (Arc::new(PgStore::connect(&fresh_database().await, "gw-test").await.expect("the store opens")), ())
    }

    crate::conformance_suite!(open);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gateways_started_together_migrate_once_and_a_restart_finds_the_rows() {
        let url = fresh_database().await;
        let (a, b) = tokio::join!(PgStore::connect(&url, "gw-a"), PgStore::connect(&url, "gw-b"));
        let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
        crate::submission::accept(&*a, crate::store::conformance::doc("UCR-PG-1", &["br-customs"])).await.unwrap().unwrap();
        let seen = b.read_with(|l| l.documents_of(&Ucr::parse("UCR-PG-1").unwrap())).await.unwrap();
        assert_eq!(seen.len(), 1, "what one gateway committed, the other reads");
        drop((a, b));
        let again: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-c").await.unwrap());
        assert_eq!(again.read_with(|l| l.audit_records()).await.unwrap().len(), 1);
    }

    /// Two gateways on one database.
    async fn two_gateways() -> (String, Arc<dyn Store>, Arc<dyn Store>) {
        let url = fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-a").await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-b").await.unwrap());
        (url, a, b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_gateways_writing_at_once_keep_their_audit_chains_anchored_together() {
        let url = fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-a").await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-b").await.unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let doc = crate::store::conformance::doc(&format!("UCR-AB{i}"), &["br-customs"]);
                tokio::spawn(async move { crate::submission::accept(&*store, doc).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("every document is accepted by one gateway or the other").expect("not refused");
        }
        let records = a.read_with(|l| l.audit_records()).await.unwrap();
        let opened: Vec<&AuditRecord> = records.iter().filter(|r| r.action == crate::audit::CHAIN_OPENED).collect();
        assert_eq!(records.len(), 200 + opened.len());
        assert!(opened.len() <= 1, "the second chain anchors the first, unless both opened at once");
        let summary = crate::audit::verify(records.clone()).expect("both chains verify");
        assert_eq!(summary.chains.iter().map(|c| c.chain.as_str()).collect::<Vec<_>>(), ["gw-a", "gw-b"]);

        // A third writer anchors both heads; cutting the end of a chain it anchored is caught.
        let c: Arc<dyn Store> = Arc::new(PgStore::connect(&url, "gw-c").await.unwrap());
        crate::submission::accept(&*c, crate::store::conformance::doc("UCR-AB-C", &["br-customs"])).await.unwrap().unwrap();
        let records = c.read_with(|l| l.audit_records()).await.unwrap();
        let opening = records.iter().find(|r| r.chain == "gw-c" && r.seq == 1).unwrap();
        assert_eq!(opening.action, crate::audit::CHAIN_OPENED);
        assert!(opening.detail.contains("gw-a") && opening.detail.contains("gw-b"), "{}", opening.detail);
        assert_eq!(crate::audit::verify(records.clone()).unwrap().chains.len(), 3);
        let head_of_a = records.iter().filter(|r| r.chain == "gw-a").map(|r| r.seq).max().unwrap();
        let cut: Vec<AuditRecord> = records.into_iter().filter(|r| !(r.chain == "gw-a" && r.seq == head_of_a)).collect();
        assert!(
            matches!(crate::audit::verify(cut), Err(crate::audit::ChainBreak::AnchorMissing { ref chain, .. }) if chain == "gw-a"),
            "a chain cut below its anchored head is caught"
        );
    }

    /// Writes on two gateways at once, with a reader following the event cursor and the agency
    /// stream's cursor page by page while they commit: every event and delivery is seen, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cursors_miss_nothing_that_two_gateways_commit_at_once() {
        let (_, a, b) = two_gateways().await;
        let writers: Vec<_> = (0..300)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let doc = crate::store::conformance::doc(&format!("UCR-CUR{i}"), &["br-customs"]);
                tokio::spawn(async move { crate::submission::accept(&*store, doc).await })
            })
            .collect();
        let reader = b.clone();
        let follow = tokio::spawn(async move {
            let agency = AgencyId::parse("br-customs").unwrap();
            let (mut events, mut deliveries) = (Vec::new(), Vec::new());
            let (mut after_event, mut after_delivery) = (0, 0);
            while events.len() < 300 || deliveries.len() < 300 {
                let page = reader.read_with(move |l| l.status_events_after(None, after_event, 7)).await.unwrap();
                if let Some(last) = page.last() {
                    after_event = last.position;
                }
                events.extend(page.into_iter().map(|e| e.ucr.to_string()));
                let agency = agency.clone();
                let page = reader.read_with(move |l| l.agency_deliveries(&agency, after_delivery, 7, usize::MAX)).await.unwrap();
                if let Some(last) = page.last() {
                    after_delivery = last.position;
                }
                deliveries.extend(page.into_iter().map(|d| d.ucr.to_string()));
                tokio::task::yield_now().await;
            }
            (events, deliveries)
        });
        for w in writers {
            w.await.unwrap().unwrap().expect("accepted");
        }
        let (events, deliveries) = tokio::time::timeout(std::time::Duration::from_secs(20), follow)
            .await
            .expect("the cursors reach every committed row")
            .unwrap();
        for (what, seen) in [("status events", events), ("deliveries", deliveries)] {
            let distinct: std::collections::HashSet<&String> = seen.iter().collect();
            assert_eq!((seen.len(), distinct.len()), (300, 300), "{what}: each seen once");
        }
    }

    /// The case a cursor on ids gets wrong, made on purpose: a transaction takes the lower id,
    /// another commits a higher one and a reader passes it, then the first commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_committed_late_with_a_lower_id_is_still_seen() {
        let (url, a, _) = two_gateways().await;
        let config: tokio_postgres::Config = url.parse().unwrap();
        let (late, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        crate::submission::accept(&*a, crate::store::conformance::doc("UCR-LATE", &["br-customs"])).await.unwrap().unwrap();
        late.batch_execute("BEGIN").await.unwrap();
        let late_id: i64 = late
            .query_one("INSERT INTO status_outbox (ucr, body, created_at) VALUES ('UCR-LATE', '{\"late\":true}', 0) RETURNING id", &[])
            .await
            .unwrap()
            .get(0);
        crate::submission::accept(&*a, crate::store::conformance::doc("UCR-EARLY", &["br-customs"])).await.unwrap().unwrap();
        let seen = a.read_with(|l| l.status_events_after(None, 0, 100)).await.unwrap();
        assert!(seen.iter().all(|e| e.id != late_id), "uncommitted: not seen");
        let cursor = seen.last().unwrap().position;
        assert!(seen.last().unwrap().id > late_id, "the event seen last has the higher id");
        late.batch_execute("COMMIT").await.unwrap();
        let mut after = Vec::new();
        for _ in 0..100 {
            after = a.read_with(move |l| l.status_events_after(None, cursor, 100)).await.unwrap();
            if !after.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), [late_id], "the late event comes after the cursor");
    }

    /// Two answers to two agencies of one consignment, on two gateways at once: each gateway
    /// recomputes the state after the other's answer, never from a stale read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_on_two_gateways_at_once_leave_the_state_they_imply() {
        let (_, a, b) = two_gateways().await;
        let mut ids = Vec::new();
        for i in 0..40 {
            let doc = crate::store::conformance::doc(&format!("UCR-ANS{i}"), &["br-customs", "br-sanitary"]);
            ids.push(doc.id);
            crate::submission::accept(&*a, doc).await.unwrap().unwrap();
        }
        let answers: Vec<_> = ids
            .iter()
            .flat_map(|id| {
                let (a, b, id) = (a.clone(), b.clone(), *id);
                [
                    tokio::spawn(async move {
                        crate::acknowledgment::apply(&*a, crate::store::conformance::ack(id, "br-customs", AckStatus::Released)).await
                    }),
                    tokio::spawn(async move {
                        crate::acknowledgment::apply(&*b, crate::store::conformance::ack(id, "br-sanitary", AckStatus::Released)).await
                    }),
                ]
            })
            .collect();
        for t in answers {
            t.await.unwrap().unwrap().expect("applied");
        }
        for i in 0..40 {
            let ucr = Ucr::parse(&format!("UCR-ANS{i}")).unwrap();
            let state = a.read_with(move |l| l.consignment(&ucr)).await.unwrap().unwrap().state;
            assert_eq!(state, ConsignmentState::Released, "UCR-ANS{i}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_webhook_limit_holds_when_two_gateways_register_at_once() {
        let (_, a, b) = two_gateways().await;
        let registrations: Vec<_> = (0..12)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    crate::webhooks::register(&*store, "trader".into(), format!("https://example.org/{i}"), "s".into(), 3, 0).await
                })
            })
            .collect();
        let mut added = 0;
        for r in registrations {
            added += usize::from(r.await.unwrap().unwrap().is_some());
        }
        assert_eq!(added, 3);
        assert_eq!(a.read_with(|l| l.webhooks_of("trader")).await.unwrap().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consignment_is_its_openers_by_constraint_even_past_the_rules_check() {
        let store = PgStore::connect(&fresh_database().await, "gw-test").await.unwrap();
        let mut first = crate::store::conformance::doc("UCR-PG-OWN", &["br-customs"]);
        first.sender = "trader-a".into();
        crate::submission::accept(&store, first).await.unwrap().unwrap();
        // Another sender's document written straight to the rows, as a second gateway that
        // checked before the first committed would: the database refuses it.
        let mut intruder = crate::store::conformance::doc("UCR-PG-OWN", &["br-customs"]);
        intruder.sender = "trader-b".into();
        let wrote = (&store as &dyn Store).write_with(Vec::new(), move |l: &mut dyn Ledger| l.insert_document(&intruder)).await;
        // Sent with the commit: the commit fails, on the documents' constraint.
        let Err(StoreError::Database(e)) = wrote else { panic!("{wrote:?}") };
        let mut cause: Option<&dyn std::error::Error> = Some(e.as_ref());
        let mut causes = Vec::new();
        while let Some(c) = cause {
            causes.push(format!("{c:?}"));
            cause = c.source();
        }
        assert!(causes.iter().any(|c| c.contains("documents_ucr_sender_fkey")), "{causes:?}");
        let (ucr, document_type) = (Ucr::parse("UCR-PG-OWN").unwrap(), DocumentType::parse("commercialInvoice").unwrap());
        let none = (&store as &dyn Store).read_with(move |l| l.identity_versions("trader-b", &ucr, &document_type)).await;
        assert_eq!(none.unwrap(), 0, "the intruder's document was not committed");
    }
}
