//! Group commit, for any store whose connection can run a transaction: every write is a job
//! sent to one writer thread, which takes every job waiting, runs them inside one transaction,
//! commits once, and only then answers each caller. A caller is told "committed" only after the
//! commit succeeded, so a `202` never precedes durability, and a burst of submissions shares one
//! commit (one fsync) instead of paying one each.
//!
//! Each job's writes can be undone alone ([`Transactional::mark`]): a job that is refused, fails
//! or panics leaves nothing, and the other jobs of its group are committed. Only a failure that
//! leaves the transaction itself unusable (the database ended it, or the job's writes could not
//! be undone) spoils the group: the jobs after it are not run, the transaction is rolled back,
//! and every caller of the group is told nothing was committed. A panicking job is answered
//! with an error and logged; the writer thread goes on.
//!
//! Before running a group the writer hands the store what the group's documents will be judged
//! on ([`AcceptanceLookup`]), so a store that pays a round trip per read fetches it for the whole
//! group at once.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use super::{AcceptanceLookup, Decided, Ledger, StoreError, Subject, Work};

/// Most jobs one transaction takes; the rest wait for the next commit.
const MAX_GROUP: usize = 1024;

/// A connection the writer drives: transaction statements, and the rows.
pub(crate) trait Transactional: Ledger + Send + 'static {
    /// Runs a statement without parameters: `BEGIN`, `COMMIT`, `ROLLBACK`.
    fn run(&mut self, statement: &str) -> Result<(), StoreError>;
    /// Opens a group's transaction, for works deciding on `subjects` (every work's, sorted,
    /// without repeats): a store that several gateways write serializes the groups sharing a
    /// subject here, taking all the group's subjects at once, in order, so no two groups wait
    /// on each other. A store with one writer just begins. `lookups` are what the group's
    /// documents will be judged on: a store may fetch them now, for the group at once.
    fn begin(&mut self, subjects: &[Subject], lookups: &[AcceptanceLookup]) -> Result<(), StoreError> {
        let _ = (subjects, lookups);
        self.run("BEGIN")
    }
    /// A job starts: what it writes from now on can be undone alone ([`Transactional::undo`]).
    fn mark(&mut self) -> Result<(), StoreError> {
        self.run("SAVEPOINT job")
    }
    /// The job ended well: its writes stay in the transaction.
    fn keep(&mut self) -> Result<(), StoreError> {
        self.run("RELEASE SAVEPOINT job")
    }
    /// The job was refused, failed or panicked: its writes are undone, the others' stay.
    fn undo(&mut self) -> Result<(), StoreError> {
        self.run("ROLLBACK TO SAVEPOINT job")?;
        self.run("RELEASE SAVEPOINT job")
    }
    /// Runs after each group's commit, before its callers are answered (a store that gives
    /// cursor positions after commit gives them here).
    fn after_commit(&mut self) {}
    /// Whether the open transaction can no longer be committed: the database ended it by itself
    /// (SQLite after an I/O error) or aborted it (PostgreSQL after a failed statement).
    fn transaction_ended(&self) -> bool {
        false
    }
    fn ledger(&mut self) -> &mut dyn Ledger;
}

type Reply = Box<dyn FnOnce(Option<&CommitFailure>) + Send>;

/// Why a group was not committed.
enum CommitFailure {
    /// The database refused the commit (a constraint checked then, the disk): every caller of
    /// the group gets it as its cause.
    Database(Arc<StoreError>),
    /// A job spoiled the group, or the commit failed otherwise.
    Other(String),
}

/// A group's commit error, as each of its callers is answered with it.
#[derive(Debug)]
struct CommitError(Arc<StoreError>);

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the commit failed: {}", self.0)
    }
}

impl std::error::Error for CommitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// A job: the subjects it decides on, what its documents will be judged on, and its work.
struct Job {
    subjects: Vec<Subject>,
    lookups: Vec<AcceptanceLookup>,
    run: Box<dyn FnOnce(&mut dyn Transactional) -> Done + Send>,
}

/// What a job leaves behind in the open transaction.
struct Done {
    /// Answers the caller once the commit is known.
    reply: Reply,
    /// Set when the job left the transaction unusable: nothing of its group may be committed.
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

    /// Runs `work` in the next group commit, its writes undone alone if it refuses or fails,
    /// and answers once that commit is durable.
    pub async fn write(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, work: Work) -> Result<Decided, StoreError> {
        self.enqueue(subjects, lookups, move |db| undoable(db, work)).await
    }

    /// Runs `f` on the writer's connection in the next group commit, as a job of its own.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Transactional) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.enqueue(Vec::new(), Vec::new(), move |db| {
            let result = f(db);
            let spoiled = result.as_ref().err().map(|e| e.to_string());
            (result, spoiled)
        })
        .await
    }

    async fn enqueue<T, F>(&self, subjects: Vec<Subject>, lookups: Vec<AcceptanceLookup>, run: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Transactional) -> (Result<T, StoreError>, Option<String>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            subjects,
            lookups,
            run: Box::new(move |db: &mut dyn Transactional| {
                let (result, spoiled) = run(db);
                let reply: Reply = Box::new(move |commit_error: Option<&CommitFailure>| {
                    let _ = tx.send(match (commit_error, result) {
                        (None, result) => result,
                        // Nothing was committed: a job's own failure still says best why not. A
                        // refusal may rest on rows of the same group that were rolled back.
                        (Some(_), Err(own)) => Err(own),
                        (Some(CommitFailure::Database(e)), Ok(_)) => Err(StoreError::Database(Box::new(CommitError(e.clone())))),
                        (Some(CommitFailure::Other(e)), Ok(_)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                    });
                });
                Done { reply, spoiled }
            }),
        };
        self.jobs.send(job).map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the store did not commit this write (see the gateway log)".into()))?
    }
}

/// Runs `work` between a mark and its keeping: what it wrote stays only if it decided a value;
/// a refusal or a failure undoes it. A work that panics is answered with an error (the defect is
/// logged) and its writes undone. When its writes cannot be undone, or the database ended the
/// transaction, the job spoils its group.
fn undoable(db: &mut dyn Transactional, work: Work) -> (Result<Decided, StoreError>, Option<String>) {
    if let Err(e) = db.mark() {
        let cause = e.to_string();
        return (Err(e), Some(cause));
    }
    let result = match catch_unwind(AssertUnwindSafe(|| work(db.ledger()))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            tracing::error!(panic = %what, "store: a rule panicked; its write is undone and answered with an error, the writer goes on");
            Err(StoreError::Unavailable(format!("the gateway failed to apply this write (a defect, logged: {what})")))
        }
    };
    let closed = match &result {
        Ok(Ok(_)) if !db.transaction_ended() => db.keep(),
        _ if db.transaction_ended() => Err(StoreError::Unavailable("the database ended the transaction".into())),
        _ => db.undo(),
    };
    match closed {
        Ok(_) => (result, None),
        Err(e) => {
            let cause = e.to_string();
            (result.and(Err(e)), Some(cause))
        }
    }
}

/// What a panic said, when it said it in text.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
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
        let mut subjects: Vec<Subject> = group.iter().flat_map(|j| j.subjects.iter().cloned()).collect();
        subjects.sort();
        subjects.dedup();
        let lookups: Vec<AcceptanceLookup> = group.iter_mut().flat_map(|j| std::mem::take(&mut j.lookups)).collect();
        if let Err(e) = db.begin(&subjects, &lookups) {
            // Whatever was opened is ended, so the next group starts clean.
            let _ = db.run("ROLLBACK");
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
            let mut d = (job.run)(&mut db);
            spoiled = d.spoiled.take();
            if spoiled.is_none() && db.transaction_ended() {
                spoiled = Some("the database ended the transaction".into());
            }
            done.push(d);
        }
        let commit_error = match spoiled.as_deref() {
            Some(cause) => {
                let _ = db.run("ROLLBACK");
                tracing::error!(error = %cause, jobs = done.len(), "store: a write failed part-way; its whole group is rolled back");
                Some(CommitFailure::Other(format!("a write of the same commit failed part-way ({cause}), so none was committed")))
            }
            None => match db.run("COMMIT") {
                Ok(_) => {
                    db.after_commit();
                    None
                }
                Err(e) => {
                    let _ = db.run("ROLLBACK");
                    tracing::error!(error = %e, "store: commit failed");
                    Some(match e {
                        StoreError::Database(_) => CommitFailure::Database(Arc::new(e)),
                        e => CommitFailure::Other(e.to_string()),
                    })
                }
            },
        };
        for d in done {
            (d.reply)(commit_error.as_ref());
        }
    }
}
