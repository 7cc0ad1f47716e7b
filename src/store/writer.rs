//! Group commit, for any store whose connection can run a transaction: every write is a job
//! sent to one writer thread, which takes every job waiting, runs them inside one transaction,
//! commits once, and only then answers each caller. A caller is told "committed" only after the
//! commit succeeded, so a `202` never precedes durability, and a burst of submissions shares one
//! commit (one fsync) instead of paying one each.
//!
//! A job of [`WriteMode::Undoable`] runs in its own savepoint, so its error undoes only its own
//! writes. A job of [`WriteMode::RefusalsFirst`] (documents, the hot path) refuses before it
//! writes and needs none. A job that fails otherwise (the disk, the database) spoils its group:
//! the jobs after it are not run, the transaction is rolled back, and every caller of the group
//! is told nothing was committed.

use std::any::Any;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{Ledger, StoreError, Subject, Work, WriteMode};

/// Most jobs one transaction takes; the rest wait for the next commit.
const MAX_GROUP: usize = 1024;

/// A connection the writer drives: transaction statements, and the rows.
pub(crate) trait Transactional: Ledger + Send + 'static {
    /// Runs a statement without parameters: `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT job`,
    /// `RELEASE job`, `ROLLBACK TO job`.
    fn run(&mut self, statement: &str) -> Result<(), StoreError>;
    /// Opens a group's transaction, for works deciding on `subjects` (every work's, sorted,
    /// without repeats): a store that several gateways write serializes the groups sharing a
    /// subject here, taking all the group's subjects at once, in order, so no two groups wait
    /// on each other. A store with one writer just begins.
    fn begin(&mut self, subjects: &[Subject]) -> Result<(), StoreError> {
        let _ = subjects;
        self.run("BEGIN")
    }
    /// Runs after each group's commit, before its callers are answered (a store that gives
    /// cursor positions after commit gives them here).
    fn after_commit(&mut self) {}
    /// Whether the database ended the open transaction by itself (SQLite after an I/O error).
    fn transaction_ended(&self) -> bool {
        false
    }
    fn ledger(&mut self) -> &mut dyn Ledger;
}

type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = (Vec<Subject>, Box<dyn FnOnce(&mut dyn Transactional) -> Done + Send>);

/// What a job leaves behind in the open transaction.
struct Done {
    /// Answers the caller once the commit is known.
    reply: Reply,
    /// Set when the job failed with an error that is not a refusal and what it wrote may be
    /// left in the transaction (no savepoint, or one that could not be undone): nothing of its
    /// group may be committed. Errors of the reads before a document's first write count too.
    spoiled: Option<String>,
}

/// The handle to a writer thread.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread `name` on `db`.
    pub fn start<T: Transactional>(name: &str, db: T) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || write_loop(db, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the next group commit, as `mode` says, and answers once that commit is
    /// durable.
    pub async fn write(&self, mode: WriteMode, subjects: Vec<Subject>, work: Work) -> Result<Box<dyn Any + Send>, StoreError> {
        self.enqueue(subjects, move |db| match mode {
            WriteMode::Undoable => in_savepoint(db, work),
            WriteMode::RefusalsFirst => {
                let result = work(db.ledger());
                let spoiled = match &result {
                    Err(e) if !e.is_refusal() => Some(e.to_string()),
                    _ => None,
                };
                (result, spoiled)
            }
        })
        .await
    }

    /// Runs `f` on the writer's connection in the next group commit, without a savepoint.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Transactional) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.enqueue(Vec::new(), move |db| {
            let result = f(db);
            let spoiled = result.as_ref().err().map(|e| e.to_string());
            (result, spoiled)
        })
        .await
    }

    async fn enqueue<T, F>(&self, subjects: Vec<Subject>, run: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Transactional) -> (Result<T, StoreError>, Option<String>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = (subjects, Box::new(move |db: &mut dyn Transactional| {
            let (result, spoiled) = run(db);
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
        }));
        self.jobs.send(job).map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the store did not commit this write (see the gateway log)".into()))?
    }
}

/// Runs `work` in a savepoint: what it wrote stays only if it succeeded. When the savepoint
/// itself cannot be opened, undone or released, what `work` wrote may still be in the
/// transaction: the job spoils its group (nothing of it is committed).
fn in_savepoint(db: &mut dyn Transactional, work: Work) -> (Result<Box<dyn Any + Send>, StoreError>, Option<String>) {
    if let Err(e) = db.run("SAVEPOINT job") {
        let cause = e.to_string();
        return (Err(e), Some(cause));
    }
    let result = work(db.ledger());
    let closed = match &result {
        Ok(_) => db.run("RELEASE SAVEPOINT job"),
        Err(_) => db.run("ROLLBACK TO SAVEPOINT job").and_then(|_| db.run("RELEASE SAVEPOINT job")),
    };
    match closed {
        Ok(_) => (result, None),
        Err(e) => {
            let cause = e.to_string();
            (result.and(Err(e)), Some(cause))
        }
    }
}

fn write_loop<T: Transactional>(mut db: T, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let mut subjects: Vec<Subject> = group.iter().flat_map(|(s, _)| s.iter().cloned()).collect();
        subjects.sort();
        subjects.dedup();
        if let Err(e) = db.begin(&subjects) {
            // Whatever was opened is ended, so the next group starts clean.
            let _ = db.run("ROLLBACK");
            // Nothing of this group is written. Dropping the jobs drops their reply channels,
            // so each caller gets `StoreError::Unavailable` and answers 503.
            tracing::error!(error = %e, jobs = group.len(), "store: cannot begin a transaction");
            continue;
        }
        let mut done: Vec<Done> = Vec::with_capacity(group.len());
        let mut spoiled: Option<String> = None;
        for (_, job) in group {
            if spoiled.is_some() {
                // Not run: dropping the job drops its reply channel, so its caller is answered
                // `StoreError::Unavailable`. Run now, it could write outside any transaction.
                continue;
            }
            let mut d = job(&mut db);
            spoiled = d.spoiled.take();
            if spoiled.is_none() && db.transaction_ended() {
                spoiled = Some("the database rolled the transaction back by itself".into());
            }
            done.push(d);
        }
        let commit_error = match spoiled.as_deref() {
            Some(cause) => {
                let _ = db.run("ROLLBACK");
                tracing::error!(error = %cause, jobs = done.len(), "store: a write failed part-way; its whole group is rolled back");
                Some(format!("a write of the same commit failed part-way ({cause}), so none was committed"))
            }
            None => match db.run("COMMIT") {
                Ok(_) => {
                    db.after_commit();
                    None
                }
                Err(e) => {
                    let _ = db.run("ROLLBACK");
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
