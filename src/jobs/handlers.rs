//! The job kinds of the foundations: housekeeping, webhook delivery, and test-only kinds.

use std::time::Duration as StdDuration;

use serde::Deserialize;

use super::worker::{Handler, JobContext, JobFailure};
use crate::auth::{self, SessionPolicy};
use crate::store::jobs::JobRow;

/// `sessions.purge`: deletes expired and idle sessions (scheduled hourly by every worker).
#[derive(Debug)]
pub struct SessionsPurge {
    /// Session lifetimes.
    pub policy: SessionPolicy,
}

#[async_trait::async_trait]
impl Handler for SessionsPurge {
    fn kind(&self) -> &'static str {
        "sessions.purge"
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRow) -> Result<(), JobFailure> {
        // The purge and the job's completion commit together.
        let tx = ctx.db.begin().await?;
        let purged = auth::purge_sessions(&tx, &ctx.clock, self.policy).await?;
        ctx.complete_in(&tx).await?;
        tx.commit().await.map_err(crate::error::Error::from)?;
        tracing::info!(purged, "expired sessions purged");
        Ok(())
    }
}

/// `outbox.webhook`: POSTs a JSON body to a URL with the job's idempotency key; 2xx completes,
/// anything else is retried with backoff (at-least-once delivery).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// The HTTP client (rustls, timeouts set).
    pub client: reqwest::Client,
    /// Whether loopback, private and link-local addresses may be reached.
    pub allow_private: bool,
}

impl WebhookDelivery {
    /// A delivery handler with a 10-second timeout per attempt.
    pub fn new(allow_private: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            allow_private,
        }
    }

    /// The client to deliver to `url` with: a URL whose host is, or resolves to, an address
    /// inside the server's networks is refused; a name is pinned to the addresses checked, so
    /// a second DNS answer cannot point the connection elsewhere.
    ///
    /// # Errors
    /// `JobFailure::Fatal` for an internal address or a bad URL, `Retry` when DNS fails.
    pub async fn client_for(&self, url: &str) -> Result<reqwest::Client, JobFailure> {
        if self.allow_private {
            return Ok(self.client.clone());
        }
        let parsed =
            reqwest::Url::parse(url).map_err(|e| JobFailure::Fatal(format!("not a URL: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| JobFailure::Fatal("the URL has no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let literal = host.parse::<std::net::IpAddr>().ok();
        let addresses: Vec<std::net::SocketAddr> = match literal {
            Some(ip) => vec![std::net::SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| JobFailure::Retry(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if let Some(address) = addresses.iter().find(|a| is_internal(a.ip())) {
            return Err(JobFailure::Fatal(format!(
                "refusing to deliver to {host} ({}): an internal address (FORMWORK_WEBHOOK_ALLOW_PRIVATE allows it)",
                address.ip()
            )));
        }
        if literal.is_some() {
            return Ok(self.client.clone());
        }
        reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addresses)
            .build()
            .map_err(|e| JobFailure::Retry(format!("cannot build the HTTP client: {e}")))
    }
}

/// Whether an address is loopback, private, link-local, shared (CGNAT), unspecified or
/// multicast: not somewhere a webhook should go from inside the server's network.
pub(super) fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        std::net::IpAddr::V6(v6) => {
            let segments = v6.segments();
            // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
            // (64:ff9b::a.b.c.d).
            let embedded = v6.to_ipv4_mapped().or_else(|| {
                let [x0, x1, x2, x3, x4, x5, ..] = segments;
                let compatible = [x0, x1, x2, x3, x4, x5] == [0; 6];
                let nat64 = [x0, x1, x2, x3, x4, x5] == [0x64, 0xff9b, 0, 0, 0, 0];
                (compatible || nat64).then(|| {
                    let [.., hi, lo] = segments;
                    std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
                })
            });
            if let Some(v4) = embedded
                && !v6.is_loopback()
                && !v6.is_unspecified()
            {
                return is_internal(std::net::IpAddr::V4(v4));
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookPayload {
    url: String,
    body: serde_json::Value,
    /// The subscription whose secret signs the delivery (none: a workflow's unsigned call).
    #[serde(default)]
    subscription: Option<uuid::Uuid>,
}

#[async_trait::async_trait]
impl Handler for WebhookDelivery {
    fn kind(&self) -> &'static str {
        "outbox.webhook"
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: WebhookPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed webhook payload: {e}")))?;
        let body = serde_json::to_vec(&payload.body)
            .map_err(|e| JobFailure::Fatal(format!("unwritable webhook body: {e}")))?;
        let mut signed = None;
        if let Some(id) = payload.subscription {
            // Signed with the secret current when it is sent; a subscription deleted or
            // switched off meanwhile delivers nothing.
            match crate::store::webhooks::find(ctx.db.conn(), id).await? {
                Some(subscription) if subscription.enabled => {
                    let at = ctx.clock.now().timestamp();
                    signed = Some(crate::webhooks::signature(&subscription.secret, at, &body));
                }
                _ => return Ok(()),
            }
        }
        let client = self.client_for(&payload.url).await?;
        let key = job.dedupe_key.clone().unwrap_or_else(|| job.id.to_string());
        // The stored key is scoped by workspace; the receiver sees it whole, stable per effect.
        let mut request = client
            .post(&payload.url)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json");
        if let Some(signature) = signed {
            request = request
                .header("Formwork-Signature", signature)
                .header("Formwork-Delivery", job.id.to_string());
        }
        let response = request
            .body(body)
            .send()
            .await
            // A receiver's URL may hold a secret: errors do not repeat it (any member may
            // read job errors).
            .map_err(|e| JobFailure::Retry(format!("delivery failed: {}", e.without_url())))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(JobFailure::Retry(format!(
                "receiver answered {}",
                response.status()
            )))
        }
    }
}

/// `test.sleep` (test mode only): sleeps for `ms` in four steps, recording progress and a
/// checkpoint after each, and resumes from the checkpoint when retried. Used to prove leases,
/// takeover after a killed worker, resumption, and exactly-once completion across processes.
#[derive(Debug)]
pub struct TestSleep;

#[derive(Debug, Deserialize)]
struct SleepPayload {
    #[serde(default)]
    ms: u64,
}

#[async_trait::async_trait]
impl Handler for TestSleep {
    fn kind(&self) -> &'static str {
        "test.sleep"
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: SleepPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(e.to_string()))?;
        let steps = 4_i64;
        let resume_after = job
            .checkpoint
            .as_ref()
            .and_then(|c| c.get("step"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        for step in (resume_after + 1)..=steps {
            tokio::time::sleep(StdDuration::from_millis(payload.ms / steps as u64)).await;
            ctx.progress(step, Some(steps), Some(serde_json::json!({ "step": step })))
                .await?;
        }
        Ok(())
    }
}

/// `test.fail` (test mode only): fails (or, with `panic`, panics) while its attempt number is
/// at most `times`.
#[derive(Debug)]
pub struct TestFail;

#[derive(Debug, Deserialize)]
struct FailPayload {
    times: i32,
    #[serde(default)]
    panic: bool,
}

#[async_trait::async_trait]
impl Handler for TestFail {
    fn kind(&self) -> &'static str {
        "test.fail"
    }

    async fn run(&self, _ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: FailPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(e.to_string()))?;
        if job.attempts <= payload.times && payload.panic {
            panic!("planned panic {}", job.attempts);
        }
        if job.attempts <= payload.times {
            Err(JobFailure::Retry(format!(
                "planned failure {}",
                job.attempts
            )))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_internal;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }
}
