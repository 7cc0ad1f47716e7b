//! Prometheus metrics, in the text exposition format, served at `/metrics` (operators only):
//! requests by route and status, validation failures by document type, deliveries by agency
//! and status, the outbox backlog, the broker's publish latency, and each agency's time from
//! routing to its first answer (the time-release figures, live). Counted in memory since the
//! gateway started, except deliveries and the backlog, which are read from the store.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds (seconds) of the publish latency: the broker's round trip.
const PUBLISH_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Bucket bounds (seconds) of the acknowledgment latency: minutes to days at a border.
const ACK_BUCKETS: &[f64] = &[1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Label values are ids, codes and routes; escaped anyway.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The gateway's counters, shared by the HTTP front, the gateway and the relay.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    validation_failures: Mutex<BTreeMap<String, u64>>,
    publish_latency: Mutex<Histogram>,
    ack_latency: Mutex<BTreeMap<String, Histogram>>,
    /// Webhook POSTs answered 2xx, and not.
    webhooks: Mutex<(u64, u64)>,
    /// Background tasks that panicked or ended unasked, by task (`crate::supervision`).
    task_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Notices of answers refused on an ack topic, by agency and what became of them
    /// (`published`, `dead_lettered`, `undelivered`): a notice the broker would not take shows here.
    refusal_notices: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Public release-time answers, by how they were served (`crate::http::indicators`).
    public_indicators: Mutex<BTreeMap<&'static str, u64>>,
    /// Answers read from an ack topic that the store could not take, by agency: each is tried
    /// again before the consumer moves on (`crate::kafka::acks`), so a rising count with a
    /// standing lag is a store that refuses.
    ack_store_retries: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            validation_failures: Mutex::default(),
            publish_latency: Mutex::new(Histogram::new(PUBLISH_BUCKETS)),
            ack_latency: Mutex::default(),
            webhooks: Mutex::default(),
            task_failures: Mutex::default(),
            refusal_notices: Mutex::default(),
            public_indicators: Mutex::default(),
            ack_store_retries: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A request answered: its route template (not the path, so ids do not multiply series).
    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), status)).or_default() += 1;
        }
    }

    /// A submission refused by its schema.
    pub fn validation_failure(&self, document_type: &str) {
        if let Ok(mut m) = self.validation_failures.lock() {
            *m.entry(document_type.to_owned()).or_default() += 1;
        }
    }

    /// The broker confirmed a record this long after it was sent.
    pub fn published(&self, latency: Duration) {
        if let Ok(mut h) = self.publish_latency.lock() {
            h.observe(latency.as_secs_f64());
        }
    }

    /// An agency's first answer to a delivery, this long after it was routed to it.
    pub fn first_answer(&self, agency: &str, after: Duration) {
        if let Ok(mut m) = self.ack_latency.lock() {
            m.entry(agency.to_owned()).or_insert_with(|| Histogram::new(ACK_BUCKETS)).observe(after.as_secs_f64());
        }
    }

    /// A webhook POST, answered 2xx (`delivered`) or not.
    pub fn webhook_sent(&self, delivered: bool) {
        if let Ok(mut m) = self.webhooks.lock() {
            if delivered {
                m.0 += 1;
            } else {
                m.1 += 1;
            }
        }
    }

    /// A background task failed (see `crate::supervision`).
    pub fn task_failed(&self, task: &'static str) {
        if let Ok(mut m) = self.task_failures.lock() {
            *m.entry(task).or_default() += 1;
        }
    }

    /// A refusal notice for `agency`'s ack topic, and what became of it (`crate::kafka::acks::Told`).
    pub fn refusal_notice(&self, agency: &str, outcome: &'static str) {
        if let Ok(mut m) = self.refusal_notices.lock() {
            *m.entry((agency.to_owned(), outcome)).or_default() += 1;
        }
    }

    /// A public release-time request: `hit` (answered from the cache), `computed`, `busy`
    /// (another computation was running) or `limited` (its source's allowance was spent).
    pub fn public_indicators(&self, outcome: &'static str) {
        if let Ok(mut m) = self.public_indicators.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }

    /// An answer on `agency`'s ack topic the store could not take, to be tried again.
    pub fn ack_store_retry(&self, agency: &str) {
        if let Ok(mut m) = self.ack_store_retries.lock() {
            *m.entry(agency.to_owned()).or_default() += 1;
        }
    }

    /// The exposition text, with the store's figures read at scrape time.
    pub fn render(&self, deliveries: &[(String, String, u64)], backlog: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP ventanilla_http_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE ventanilla_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(out, "ventanilla_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", label(route));
            }
        }
        out.push_str("# HELP ventanilla_validation_failures_total Submissions refused by their schema, by document type.\n");
        out.push_str("# TYPE ventanilla_validation_failures_total counter\n");
        if let Ok(m) = self.validation_failures.lock() {
            for (t, n) in m.iter() {
                let _ = writeln!(out, "ventanilla_validation_failures_total{{document_type=\"{}\"}} {n}", label(t));
            }
        }
        out.push_str("# HELP ventanilla_deliveries Deliveries in the store, by agency and status.\n");
        out.push_str("# TYPE ventanilla_deliveries gauge\n");
        for (agency, status, n) in deliveries {
            let _ = writeln!(out, "ventanilla_deliveries{{agency=\"{}\",status=\"{}\"}} {n}", label(agency), label(status));
        }
        out.push_str("# HELP ventanilla_outbox_backlog Deliveries waiting for the broker.\n");
        out.push_str("# TYPE ventanilla_outbox_backlog gauge\n");
        let _ = writeln!(out, "ventanilla_outbox_backlog {backlog}");
        out.push_str("# HELP ventanilla_publish_latency_seconds From sending a record to the broker's confirmation.\n");
        out.push_str("# TYPE ventanilla_publish_latency_seconds histogram\n");
        if let Ok(h) = self.publish_latency.lock() {
            h.render(&mut out, "ventanilla_publish_latency_seconds", "");
        }
        out.push_str("# HELP ventanilla_acknowledgment_latency_seconds From a delivery's routing to its agency's first answer.\n");
        out.push_str("# TYPE ventanilla_acknowledgment_latency_seconds histogram\n");
        if let Ok(m) = self.ack_latency.lock() {
            for (agency, h) in m.iter() {
                h.render(&mut out, "ventanilla_acknowledgment_latency_seconds", &format!("agency=\"{}\"", label(agency)));
            }
        }
        out.push_str("# HELP ventanilla_webhook_posts_total Status changes POSTed to traders' webhooks, by outcome.\n");
        out.push_str("# TYPE ventanilla_webhook_posts_total counter\n");
        if let Ok(m) = self.webhooks.lock() {
            let _ = writeln!(out, "ventanilla_webhook_posts_total{{outcome=\"delivered\"}} {}", m.0);
            let _ = writeln!(out, "ventanilla_webhook_posts_total{{outcome=\"failed\"}} {}", m.1);
        }
        out.push_str("# HELP ventanilla_public_indicators_total Public release-time requests, by outcome: hit (from the cache), computed, busy, limited.\n");
        out.push_str("# TYPE ventanilla_public_indicators_total counter\n");
        if let Ok(m) = self.public_indicators.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(out, "ventanilla_public_indicators_total{{outcome=\"{outcome}\"}} {n}");
            }
        }
        out.push_str("# HELP ventanilla_background_task_failures_total Background tasks that panicked or ended unasked (the gateway then stops).\n");
        out.push_str("# TYPE ventanilla_background_task_failures_total counter\n");
        if let Ok(m) = self.task_failures.lock() {
            for (task, n) in m.iter() {
                let _ = writeln!(out, "ventanilla_background_task_failures_total{{task=\"{}\"}} {n}", label(task));
            }
        }
        out.push_str("# HELP ventanilla_ack_refusal_notices_total Notices of answers refused on an ack topic, by agency and outcome (published, dead_lettered, undelivered).\n");
        out.push_str("# TYPE ventanilla_ack_refusal_notices_total counter\n");
        if let Ok(m) = self.refusal_notices.lock() {
            for ((agency, outcome), n) in m.iter() {
                let _ = writeln!(out, "ventanilla_ack_refusal_notices_total{{agency=\"{}\",outcome=\"{outcome}\"}} {n}", label(agency));
            }
        }
        out.push_str("# HELP ventanilla_ack_store_retries_total Answers read from an ack topic that the store could not take, tried again before the next, by agency.\n");
        out.push_str("# TYPE ventanilla_ack_store_retries_total counter\n");
        if let Ok(m) = self.ack_store_retries.lock() {
            for (agency, n) in m.iter() {
                let _ = writeln!(out, "ventanilla_ack_store_retries_total{{agency=\"{}\"}} {n}", label(agency));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_is_prometheus() {
        let m = Metrics::default();
        m.published(Duration::from_millis(3));
        m.published(Duration::from_millis(40));
        m.first_answer("br-customs", Duration::from_secs(120));
        m.request("/v1/documents", 202);
        m.request("/v1/documents", 202);
        m.validation_failure("customsDeclaration");
        m.webhook_sent(true);
        m.webhook_sent(false);
        m.webhook_sent(false);
        m.refusal_notice("br-customs", "dead_lettered");
        m.ack_store_retry("br-customs");
        m.ack_store_retry("br-customs");
        let text = m.render(&[("br-customs".into(), "released".into(), 4)], 7);
        assert!(text.contains("ventanilla_http_requests_total{route=\"/v1/documents\",status=\"202\"} 2"), "{text}");
        assert!(text.contains("ventanilla_publish_latency_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("ventanilla_publish_latency_seconds_bucket{le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("ventanilla_publish_latency_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("ventanilla_acknowledgment_latency_seconds_bucket{agency=\"br-customs\",le=\"300\"} 1"), "{text}");
        assert!(text.contains("ventanilla_acknowledgment_latency_seconds_bucket{agency=\"br-customs\",le=\"60\"} 0"), "{text}");
        assert!(text.contains("ventanilla_deliveries{agency=\"br-customs\",status=\"released\"} 4"));
        assert!(text.contains("ventanilla_outbox_backlog 7"));
        assert!(text.contains("ventanilla_validation_failures_total{document_type=\"customsDeclaration\"} 1"));
        assert!(text.contains("ventanilla_webhook_posts_total{outcome=\"delivered\"} 1"), "{text}");
        assert!(text.contains("ventanilla_webhook_posts_total{outcome=\"failed\"} 2"), "{text}");
        assert!(text.contains("ventanilla_ack_refusal_notices_total{agency=\"br-customs\",outcome=\"dead_lettered\"} 1"), "{text}");
        assert!(text.contains("ventanilla_ack_store_retries_total{agency=\"br-customs\"} 2"), "{text}");
    }
}
