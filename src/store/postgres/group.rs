//! What the PostgreSQL writer keeps of its open transaction so that a group commit costs a few
//! round trips whatever its size:
//!
//! - [`Pending`]: the rows the rules wrote and nothing has read back yet. They are sent together,
//!   one multi-row statement per table (`INSERT ... SELECT FROM unnest(...)`), pipelined with
//!   the next read (which may depend on them) or with the commit.
//! - [`Facts`]: what the group's documents are judged on (earlier documents by key and by
//!   identity, their consignments, how many versions a sender has), fetched for the whole group
//!   in one query per kind once the group's locks are held, and forgotten as soon as a write may
//!   change them.
//! - The head of this gateway's audit chain, which only this writer appends to.
//! - Identity values, taken in blocks after the group's locks are held (so that a consignment's
//!   deliveries keep their order across gateways) and dropped with the group.
//!
//! The rules see none of this: they read and write through the same [`Ledger`](super::Ledger)
//! as on SQLite, and the conformance suite runs them on both.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::super::{AgencyReleaseTimes, AuditRecord, ConsignmentRecord, ConsignmentReleaseTimes, EarlierDocument};

/// A parameter of a statement sent later: owned, since the rule that gave it has moved on.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// A statement to send, with its parameters.
pub(super) struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
}

/// An agency's answer on its delivery: its status, its first answer's time, and its leaving the
/// outbox when the answer shows the agency has the document (`received`).
pub(super) const RECORD_ANSWER: &str = "UPDATE deliveries SET status = $2, first_answer_at = COALESCE(first_answer_at, $3), failed_at = NULL,
                                         dispatched_at = CASE WHEN $4 THEN COALESCE(dispatched_at, $3) ELSE dispatched_at END
                                     WHERE id = $1";

/// A row operation the rules asked for and the store has not sent yet.
pub(super) enum Op {
    Consignment { ucr: String, state: &'static str, at: i64, opened_by: String },
    Document(Box<DocumentRow>),
    Delivery { id: i64, document_id: String, agency: String, topic: String, rule: String, selection: Option<String>, at: i64 },
    Event { delivery_id: i64, status: String, at: i64, source: String, reason: Option<String>, outcome: String },
    Receipt { document_id: String, receipt: String },
    Status { ucr: String, body: String, at: i64 },
    Audit(Box<AuditRecord>),
    ReleaseTimes(Box<ConsignmentReleaseTimes>, Vec<AgencyReleaseTimes>),
    /// A consignment's state, or only its last change when `state` is none.
    ConsignmentChange { ucr: String, state: Option<&'static str>, at: i64, released_at: Option<i64> },
    /// An agency's answer on its delivery (`Answers::record_answer`): after the rows of its
    /// segment, in order with the other changes.
    Answer { delivery_id: i64, status: &'static str, at: i64, received: bool },
}

/// What waits to be sent: a row, or a statement without parameters that no row may be moved
/// across (a savepoint's release).
enum Entry {
    Row(Op),
    Boundary(&'static str),
}

/// A document's row, as `documents` takes it.
pub(super) struct DocumentRow {
    pub id: String,
    pub ucr: String,
    pub document_type: String,
    pub schema_version: String,
    pub schema_id: String,
    pub origin: String,
    pub destination: String,
    pub sender: String,
    pub payload: String,
    pub submitted_at: i64,
    pub idempotency_key: Option<String>,
    pub body_sha256: String,
    pub version: i32,
    pub amends: Option<String>,
    pub transport_mode: Option<String>,
    pub hs_chapter: Option<String>,
    pub border_post: Option<String>,
}

/// The rows written and not yet sent, in the order the rules wrote them.
#[derive(Default)]
pub(super) struct Pending {
    entries: Vec<Entry>,
    /// Where the running job's rows start, and whether its savepoint was sent (it is sent only
    /// with the first of its rows that must go before the job ends).
    mark: Option<(usize, bool)>,
}

impl Pending {
    pub fn push(&mut self, op: Op) {
        self.entries.push(Entry::Row(op));
    }

    /// A job starts: what it writes from now on can be undone alone.
    pub fn mark(&mut self) {
        self.mark = Some((self.entries.len(), false));
    }

    /// The running job keeps its rows; its savepoint is released when it was sent (else there
    /// is none).
    pub fn keep(&mut self) {
        if let Some((_, true)) = self.mark.take() {
            self.entries.push(Entry::Boundary("RELEASE SAVEPOINT job"));
        }
    }

    /// The running job's rows are dropped; whether its savepoint was sent, so the database must
    /// be rolled back to it too.
    pub fn undo(&mut self) -> bool {
        match self.mark.take() {
            Some((from, sent)) => {
                // Whatever was sent was sent with the savepoint before it: only the rows after
                // the last flush remain here, and they are all the job's.
                self.entries.truncate(if sent { 0 } else { from });
                sent
            }
            None => false,
        }
    }

    /// The statements that write every pending row, in an order the rows allow, and the running
    /// job's savepoint before its rows (or at the end, when `writes_next`: a write of the job is
    /// sent right after these); nothing is left pending. With them, the first statement the
    /// job's savepoint covers (a statement failing from there on can be undone with the job
    /// alone), when the job has one.
    pub fn take(&mut self, writes_next: bool) -> (Vec<Statement>, Option<usize>) {
        let entries = std::mem::take(&mut self.entries);
        // Where the running job's savepoint goes, when it must go now; what it covers.
        let (mut savepoint_at, mut covered) = (None, None);
        if let Some((from, sent)) = &mut self.mark {
            if *sent {
                // Sent with an earlier flush: every entry since is the job's.
                covered = Some(0);
            } else if writes_next || *from < entries.len() {
                savepoint_at = Some(*from);
                *sent = true;
            }
            *from = 0;
        }
        let mut statements = Vec::new();
        let mut segment = Vec::new();
        let len = entries.len();
        for (i, entry) in entries.into_iter().enumerate() {
            if savepoint_at == Some(i) {
                cut(&mut segment, &mut statements, "SAVEPOINT job");
                covered = Some(statements.len());
            }
            match entry {
                Entry::Row(op) => segment.push(op),
                Entry::Boundary(sql) => cut(&mut segment, &mut statements, sql),
            }
        }
        if savepoint_at == Some(len) {
            cut(&mut segment, &mut statements, "SAVEPOINT job");
            covered = Some(statements.len());
        }
        statements.extend(segment_statements(segment));
        (statements, covered)
    }
}

/// Ends the segment of rows before `sql`, a statement no row may be moved across.
fn cut(segment: &mut Vec<Op>, statements: &mut Vec<Statement>, sql: &'static str) {
    statements.extend(segment_statements(std::mem::take(segment)));
    statements.push(Statement { sql, params: Vec::new() });
}

/// One multi-row statement per table for the rows of a segment (no savepoint among them), the
/// tables in the order their references need: a consignment before its documents, a document
/// before its deliveries and receipt, a delivery before its history. Within a table the rows
/// keep the order they were written in (identity values, the audit chain).
fn segment_statements(ops: Vec<Op>) -> Vec<Statement> {
    let mut consignments = Columns::<4>::default();
    let mut documents = Columns::<17>::default();
    let mut deliveries = Columns::<7>::default();
    let mut events = Columns::<6>::default();
    let mut receipts = Columns::<2>::default();
    let mut statuses = Columns::<3>::default();
    let mut audits = Columns::<9>::default();
    let mut changes: Vec<Statement> = Vec::new();
    // The last facts of each consignment win (a consignment's row is written once per statement).
    let mut release_times: Vec<(Box<ConsignmentReleaseTimes>, Vec<AgencyReleaseTimes>)> = Vec::new();
    for op in ops {
        match op {
            Op::Consignment { ucr, state, at, opened_by } => {
                consignments.row([text(ucr), text(state.to_owned()), int(at), text(opened_by)]);
            }
            Op::Document(d) => {
                let d = *d;
                documents.row([
                    text(d.id),
                    text(d.ucr),
                    text(d.document_type),
                    text(d.schema_version),
                    text(d.schema_id),
                    text(d.origin),
                    text(d.destination),
                    text(d.sender),
                    text(d.payload),
                    int(d.submitted_at),
                    opt(d.idempotency_key),
                    text(d.body_sha256),
                    Value::Int32(d.version),
                    opt(d.amends),
                    opt(d.transport_mode),
                    opt(d.hs_chapter),
                    opt(d.border_post),
                ]);
            }
            Op::Delivery { id, document_id, agency, topic, rule, selection, at } => {
                deliveries.row([int(id), text(document_id), text(agency), text(topic), text(rule), int(at), opt(selection)]);
            }
            Op::Event { delivery_id, status, at, source, reason, outcome } => {
                events.row([int(delivery_id), text(status), int(at), text(source), opt(reason), text(outcome)]);
            }
            Op::Receipt { document_id, receipt } => receipts.row([text(document_id), text(receipt)]),
            Op::Status { ucr, body, at } => statuses.row([text(ucr), text(body), int(at)]),
            Op::Audit(r) => {
                let r = *r;
                audits.row([
                    text(r.chain),
                    int(r.seq),
                    int(r.at),
                    text(r.participant),
                    text(r.action),
                    text(r.subject),
                    text(r.detail),
                    text(r.prev_hash),
                    text(r.hash),
                ]);
            }
            Op::ReleaseTimes(c, agencies) => {
                release_times.retain(|(earlier, _)| earlier.ucr != c.ucr);
                release_times.push((c, agencies));
            }
            Op::ConsignmentChange { ucr, state: Some(state), at, released_at } => changes.push(Statement {
                sql: "UPDATE consignments SET state = $2, updated_at = $3, released_at = $4 WHERE ucr = $1",
                params: vec![Box::new(ucr), Box::new(state), Box::new(at), Box::new(released_at)],
            }),
            Op::ConsignmentChange { ucr, state: None, at, .. } => changes.push(Statement {
                sql: "UPDATE consignments SET updated_at = $2 WHERE ucr = $1",
                params: vec![Box::new(ucr), Box::new(at)],
            }),
            Op::Answer { delivery_id, status, at, received } => changes.push(Statement {
                sql: RECORD_ANSWER,
                params: vec![Box::new(delivery_id), Box::new(status), Box::new(at), Box::new(received)],
            }),
        }
    }
    let mut statements = Vec::new();
    consignments.statement(
        &mut statements,
        "INSERT INTO consignments (ucr, state, created_at, updated_at, opened_by)
         SELECT u, s, a, a, o FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS t(u, s, a, o)
         ON CONFLICT (ucr) DO NOTHING",
    );
    documents.statement(
        &mut statements,
        // An amendment's history is its amended version's; the amended version was read (so
        // sent) before the amendment was written.
        "INSERT INTO documents (id, ucr, document_type, schema_version, schema_id, origin, destination, sender, payload,
                                submitted_at, idempotency_key, body_sha256, version, amends, transport_mode, hs_chapter, border_post,
                                chain)
         SELECT t.id, t.ucr, t.dt, t.sv, t.si, t.o, t.d, t.s, t.p, t.at, t.k, t.h, t.v, t.am, t.tm, t.hs, t.bp,
                COALESCE((SELECT chain FROM documents WHERE id = t.am), t.id)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                     $10::bigint[], $11::text[], $12::text[], $13::int[], $14::text[], $15::text[], $16::text[], $17::text[])
              AS t(id, ucr, dt, sv, si, o, d, s, p, at, k, h, v, am, tm, hs, bp)",
    );
    deliveries.statement(
        &mut statements,
        "INSERT INTO deliveries (id, document_id, agency, topic, rule, status, created_at, selection) OVERRIDING SYSTEM VALUE
         SELECT i, d, a, t, r, 'pending', c, s FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
              AS x(i, d, a, t, r, c, s)",
    );
    events.statement(
        &mut statements,
        "INSERT INTO delivery_events (delivery_id, status, at, source, reason, outcome)
         SELECT d, s, a, o, r, c FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
              WITH ORDINALITY AS t(d, s, a, o, r, c, n) ORDER BY n",
    );
    statuses.statement(
        &mut statements,
        "INSERT INTO status_outbox (ucr, body, created_at, owner)
         SELECT t.u, t.b, t.a, (SELECT opened_by FROM consignments WHERE ucr = t.u)
         FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t(u, b, a, n) ORDER BY t.n",
    );
    receipts.statement(&mut statements, "INSERT INTO receipts (document_id, receipt) SELECT * FROM unnest($1::text[], $2::text[])");
    audits.statement(
        &mut statements,
        "INSERT INTO audit_log (chain, seq, at, participant, action, subject, detail, prev_hash, hash)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
    );
    statements.extend(changes);
    if !release_times.is_empty() {
        release_times_statements(&mut statements, release_times);
    }
    statements
}

/// The release-time facts of some consignments (one each): their rows replaced, their agencies'
/// rows replaced, and one change noted per consignment for the indicators' index.
fn release_times_statements(statements: &mut Vec<Statement>, all: Vec<(Box<ConsignmentReleaseTimes>, Vec<AgencyReleaseTimes>)>) {
    let mut facts = Columns::<22>::default();
    let mut agencies = Columns::<14>::default();
    let mut ucrs: Vec<String> = Vec::with_capacity(all.len());
    for (c, parts) in all {
        let c = *c;
        for a in parts {
            agencies.row([
                text(c.ucr.to_string()),
                text(a.agency.to_string()),
                int(c.lodged_at),
                int(a.routed_at),
                Value::OptInt(a.first_answer_at),
                Value::OptInt(a.decided_at),
                opt(a.decision),
                int(a.hold_ms),
                int(a.query_trader_ms),
                int(a.query_agency_ms),
                opt(a.selectivity.map(|s| s.channel.to_owned())),
                opt(a.selectivity.map(|s| s.source.to_owned())),
                opt(a.selectivity.and_then(|s| s.finding).map(str::to_owned)),
                Value::OptInt(a.selectivity.map(|s| i64::from(s.standing_instruction))),
            ]);
        }
        ucrs.push(c.ucr.to_string());
        facts.row([
            text(c.ucr.to_string()),
            text(c.owner),
            int(c.lodged_at),
            Value::OptInt(c.arrived_at),
            Value::OptInt(c.released_at),
            Value::OptInt(c.decided_at),
            text(c.outcome),
            text(c.document_type),
            text(c.origin),
            text(c.destination),
            opt(c.dims.transport_mode),
            opt(c.dims.hs_chapter),
            opt(c.dims.border_post),
            text(c.channel),
            int(c.hold_ms),
            int(c.query_trader_ms),
            int(c.query_agency_ms),
            text(c.risk_channel),
            Value::OptInt(c.formalities.map(|f| f.documents)),
            Value::OptInt(c.formalities.map(|f| f.amendments)),
            Value::OptInt(c.formalities.map(|f| f.queries)),
            Value::OptInt(c.formalities.map(|f| f.resubmissions)),
        ]);
    }
    facts.statement(
        statements,
        "INSERT INTO release_times (ucr, owner, lodged_at, arrived_at, released_at, decided_at, outcome, document_type,
             origin, destination, transport_mode, hs_chapter, border_post, channel, hold_ms, query_trader_ms, query_agency_ms,
             risk_channel, documents, amendments, queries, resubmissions)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[],
             $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[],
             $18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[])
         ON CONFLICT (ucr) DO UPDATE SET owner = EXCLUDED.owner, lodged_at = EXCLUDED.lodged_at, arrived_at = EXCLUDED.arrived_at,
             released_at = EXCLUDED.released_at, decided_at = EXCLUDED.decided_at, outcome = EXCLUDED.outcome,
             document_type = EXCLUDED.document_type, origin = EXCLUDED.origin, destination = EXCLUDED.destination,
             transport_mode = EXCLUDED.transport_mode, hs_chapter = EXCLUDED.hs_chapter, border_post = EXCLUDED.border_post,
             channel = EXCLUDED.channel, hold_ms = EXCLUDED.hold_ms, query_trader_ms = EXCLUDED.query_trader_ms,
             query_agency_ms = EXCLUDED.query_agency_ms, risk_channel = EXCLUDED.risk_channel, documents = EXCLUDED.documents,
             amendments = EXCLUDED.amendments, queries = EXCLUDED.queries, resubmissions = EXCLUDED.resubmissions",
    );
    statements.push(Statement {
        sql: "DELETE FROM agency_release_times WHERE ucr = ANY($1::text[])",
        params: vec![Box::new(ucrs.clone())],
    });
    statements.push(Statement {
        sql: "INSERT INTO release_time_changes (ucr) SELECT * FROM unnest($1::text[])",
        params: vec![Box::new(ucrs)],
    });
    agencies.statement(
        statements,
        "INSERT INTO agency_release_times (ucr, agency, lodged_at, routed_at, first_answer_at, decided_at, decision, hold_ms,
             query_trader_ms, query_agency_ms, selected_channel, selected_by, finding, standing_instruction)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[],
             $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::bigint[])",
    );
}

/// One value of a column.
enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Int32(i32),
}

fn text(s: String) -> Value {
    Value::Text(s)
}
fn opt(s: Option<String>) -> Value {
    Value::OptText(s)
}
fn int(i: i64) -> Value {
    Value::Int(i)
}

/// A column's values, as one array parameter.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Int32(Vec<i32>),
}

/// The rows of one table, column by column.
struct Columns<const N: usize> {
    columns: Option<[Column; N]>,
}

impl<const N: usize> Default for Columns<N> {
    fn default() -> Self {
        Columns { columns: None }
    }
}

impl<const N: usize> Columns<N> {
    fn row(&mut self, values: [Value; N]) {
        let columns = self.columns.get_or_insert_with(|| {
            values.each_ref().map(|v| match v {
                Value::Text(_) | Value::OptText(_) => Column::Text(Vec::new()),
                Value::Int(_) | Value::OptInt(_) => Column::Int(Vec::new()),
                Value::Int32(_) => Column::Int32(Vec::new()),
            })
        });
        for (column, value) in columns.iter_mut().zip(values) {
            match (column, value) {
                (Column::Text(c), Value::Text(s)) => c.push(Some(s)),
                (Column::Text(c), Value::OptText(s)) => c.push(s),
                (Column::Int(c), Value::Int(i)) => c.push(Some(i)),
                (Column::Int(c), Value::OptInt(i)) => c.push(i),
                (Column::Int32(c), Value::Int32(i)) => c.push(i),
                // Each table's rows are built by one arm of `segment_statements`, with the same
                // kinds of values in the same places.
                _ => tracing::error!("store: a row's value does not match its column"),
            }
        }
    }

    /// The statement writing these rows, when there are any.
    fn statement(self, statements: &mut Vec<Statement>, sql: &'static str) {
        let Some(columns) = self.columns else { return };
        let params = columns
            .into_iter()
            .map(|c| -> Param {
                match c {
                    Column::Text(v) => Box::new(v),
                    Column::Int(v) => Box::new(v),
                    Column::Int32(v) => Box::new(v),
                }
            })
            .collect();
        statements.push(Statement { sql, params });
    }
}

/// What the group's documents are judged on, as of the group's locks, until a write may change
/// it: a fact not here is read from the database.
#[derive(Default)]
pub(super) struct Facts {
    /// The document of (sender, key), or none.
    pub by_key: HashMap<(String, String), Option<EarlierDocument>>,
    /// Per UCR.
    pub consignments: HashMap<String, ConsignmentFacts>,
}

/// What is known of one consignment.
#[derive(Default)]
pub(super) struct ConsignmentFacts {
    /// Its row and opener, or none when it does not exist; unknown when not fetched.
    pub row: Option<Option<(ConsignmentRecord, String)>>,
    /// (sender, type, body hash): the live document found by identity.
    pub by_identity: Vec<((String, String, String), Option<EarlierDocument>)>,
    /// (sender, type): how many documents.
    pub versions: Vec<((String, String), u64)>,
}

impl Facts {
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.consignments.clear();
    }

    /// A write named this consignment: what was known of it may have changed.
    pub fn forget(&mut self, ucr: &str) {
        self.consignments.remove(ucr);
    }
}
