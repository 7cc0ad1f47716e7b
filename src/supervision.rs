//! Supervision of the gateway's background tasks: the delivery relay, the status relay, the
//! acknowledgment consumer, the webhook dispatcher and the broker watcher.
//!
//! The policy: a task that panics, or ends while the gateway is not stopping, is a fault the
//! gateway does not repair from inside (what broke may be the task's own state: a consumer, a
//! producer's queue). It is logged with its cause, counted in `/metrics`
//! (`ventanilla_background_task_failures_total{task}`), turns `/readyz` to 503 naming the task,
//! and stops the gateway as SIGTERM would: in-flight requests finish, the other tasks drain,
//! the producer flushes, and the process exits with an error for its service manager (systemd,
//! Kubernetes, docker's restart policy) to start it again. Nothing accepted is lost meanwhile:
//! the store holds it and the next start publishes it. Restarting a task in place would keep a
//! 202-answering gateway alive around a part that may fail again unseen; stopping is louder.

use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// A background task that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The task's name: `relay`, `status-relay`, `ack-consumer`, `webhooks`, `broker-watcher`.
    pub task: &'static str,
    /// The panic's message, or that it ended before the gateway stopped.
    pub cause: String,
}

/// The background tasks' failures, shared by the supervisors, readiness and the stop logic.
#[derive(Clone, Default)]
pub struct TaskHealth {
    failures: Arc<Mutex<Vec<TaskFailure>>>,
    /// Woken by the first failure; the gateway then stops.
    fault: Arc<Notify>,
}

impl TaskHealth {
    /// Every failure so far (empty while all is well).
    pub fn failures(&self) -> Vec<TaskFailure> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once a task has failed (at once if one already has).
    pub async fn fault(&self) {
        self.fault.notified().await
    }

    fn record(&self, failure: TaskFailure) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).push(failure);
        // A permit is kept when nobody waits yet, so a failure before the wait is not missed.
        self.fault.notify_one();
    }
}

/// Runs `work` as the background task `task`, watching how it ends: a panic, or an end while
/// `shutdown` has not been asked for, is recorded in `health` and `metrics` (see the module's
/// policy). The returned handle ends when `work` does.
pub fn supervise<F>(
    task: &'static str,
    work: F,
    shutdown: watch::Receiver<bool>,
    health: TaskHealth,
    metrics: Arc<Metrics>,
) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = tokio::spawn(work);
    tokio::spawn(async move {
        let cause = match inner.await {
            Ok(()) if *shutdown.borrow() => return,
            Ok(()) => "it ended while the gateway was not stopping".to_owned(),
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                format!("it panicked: {message}")
            }
            Err(e) => format!("it was cancelled: {e}"),
        };
        tracing::error!(task, cause = %cause,
            "background task failed: the gateway stops (in-flight work finishes, nothing accepted is lost); \
             its service manager should start it again. Report the cause if it repeats");
        metrics.task_failed(task);
        health.record(TaskFailure { task, cause });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panicking_task_is_recorded_counted_and_raises_the_fault() {
        let (_stop, shutdown) = watch::channel(false);
        let (health, metrics) = (TaskHealth::default(), Arc::new(Metrics::default()));
        supervise("relay", async { panic!("outbox row without a topic") }, shutdown, health.clone(), metrics.clone())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), health.fault()).await.expect("the fault is raised");
        assert_eq!(
            health.failures(),
            vec![TaskFailure { task: "relay", cause: "it panicked: outbox row without a topic".into() }]
        );
        assert!(metrics.render(&[], 0).contains("ventanilla_background_task_failures_total{task=\"relay\"} 1"));
    }

    #[tokio::test]
    async fn a_task_that_ends_before_the_stop_is_a_failure_and_after_it_is_not() {
        let (stop, shutdown) = watch::channel(false);
        let (health, metrics) = (TaskHealth::default(), Arc::new(Metrics::default()));
        supervise("ack-consumer", async {}, shutdown.clone(), health.clone(), metrics.clone()).await.unwrap();
        assert_eq!(health.failures().len(), 1);
        assert_eq!(health.failures()[0].cause, "it ended while the gateway was not stopping");

        stop.send(true).unwrap();
        supervise("webhooks", async {}, shutdown, health.clone(), metrics.clone()).await.unwrap();
        assert_eq!(health.failures().len(), 1, "an end after the stop was asked for is the normal one");
        assert!(!metrics.render(&[], 0).contains("task=\"webhooks\""));
    }
}
