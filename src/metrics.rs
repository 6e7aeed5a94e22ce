//! Prometheus metrics: HTTP requests by method, route (the matched route template, never the
//! raw path) and status, with a latency histogram per route, kept in memory per process; and the
//! job queue (depth per kind and state, the oldest due job's wait, dead outbox deliveries), read
//! from the database at each scrape so every process reports the same shared queue.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::store::jobs::QueueGauges;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The methods counted apart (others are counted as `OTHER`).
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

/// The process's request metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per route template, per method (in [`METHODS`] order): found without allocating once a
    /// route has been seen.
    routes: Mutex<HashMap<String, [RouteStats; METHODS.len()]>>,
}

/// A label value as the text format writes it (`\`, `"` and newlines escaped).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let index = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), Default::default());
        }
        let Some(stats) = routes.get_mut(route).map(|by_method| &mut by_method[index]) else {
            return;
        };
        *stats.by_status.entry(status).or_default() += 1;
        stats.count += 1;
        stats.sum_seconds += seconds;
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.buckets[bucket] += 1;
        }
    }

    /// The metrics in the Prometheus text format (0.0.4), with the queue's `gauges` read at
    /// `now`.
    pub fn render(&self, gauges: &QueueGauges, now: chrono::DateTime<chrono::Utc>) -> String {
        let mut out = String::new();
        out.push_str("# HELP formwork_http_requests_total HTTP requests answered, by method, route template and status.\n");
        out.push_str("# TYPE formwork_http_requests_total counter\n");
        // A copy, sorted, so the lock is held only for the copy.
        let mut routes: Vec<((String, String), RouteStats)> = self
            .routes
            .lock()
            .map(|r| {
                r.iter()
                    .flat_map(|(route, by_method)| {
                        METHODS
                            .iter()
                            .zip(by_method.iter())
                            .filter(|(_, stats)| stats.count > 0)
                            .map(|(method, stats)| {
                                (((*method).to_owned(), route.clone()), stats.clone())
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        for ((method, route), stats) in &routes {
            for (status, count) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "formwork_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    label(method),
                    label(route)
                );
            }
        }
        out.push_str("# HELP formwork_http_request_duration_seconds Time to answer, by method and route template.\n");
        out.push_str("# TYPE formwork_http_request_duration_seconds histogram\n");
        for ((method, route), stats) in &routes {
            let (buckets, count, sum) = (&stats.buckets, stats.count, stats.sum_seconds);
            let labels = format!("method=\"{}\",route=\"{}\"", label(method), label(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "formwork_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "formwork_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "formwork_http_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "formwork_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        out.push_str(
            "# HELP formwork_jobs Background jobs by kind and state (queued, running, dead).\n",
        );
        out.push_str("# TYPE formwork_jobs gauge\n");
        let mut dead_outbox: BTreeMap<&str, i64> = BTreeMap::new();
        for (kind, status, count) in &gauges.counts {
            let _ = writeln!(
                out,
                "formwork_jobs{{kind=\"{}\",status=\"{}\"}} {count}",
                label(kind),
                label(status)
            );
            if status == crate::store::jobs::status::DEAD && kind.starts_with("outbox.") {
                *dead_outbox.entry(kind.as_str()).or_default() += count;
            }
        }
        out.push_str("# HELP formwork_jobs_oldest_due_seconds How long the oldest due job has been waiting (0: none waits).\n");
        out.push_str("# TYPE formwork_jobs_oldest_due_seconds gauge\n");
        let lag = gauges.oldest_due.map_or(0.0, |at| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        let _ = writeln!(out, "formwork_jobs_oldest_due_seconds {lag}");
        out.push_str("# HELP formwork_outbox_failed Email and webhook deliveries that ran out of attempts (dead), by kind.\n");
        out.push_str("# TYPE formwork_outbox_failed gauge\n");
        for kind in ["outbox.email", "outbox.webhook"] {
            let count = dead_outbox.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "formwork_outbox_failed{{kind=\"{kind}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/api/v1/w/{workspace}", 200, 0.003);
        metrics.observe("GET", "/api/v1/w/{workspace}", 200, 0.2);
        metrics.observe("GET", "/api/v1/w/{workspace}", 404, 20.0);
        let gauges = QueueGauges {
            counts: vec![("outbox.webhook".to_owned(), "dead".to_owned(), 2)],
            oldest_due: None,
        };
        let text = metrics.render(&gauges, chrono::Utc::now());
        assert!(text.contains(
            "formwork_http_requests_total{method=\"GET\",route=\"/api/v1/w/{workspace}\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.25\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3"), "{text}");
        assert!(text.contains("formwork_outbox_failed{kind=\"outbox.webhook\"} 2"));
        assert!(text.contains("formwork_jobs_oldest_due_seconds 0"));
    }
}
