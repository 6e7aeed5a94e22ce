//! The login rate limit: after too many failures for one email, further attempts wait.
//!
//! Kept in memory per process; with several processes each enforces its own window, which still
//! bounds guessing to a small multiple (recorded in docs/decisions.md).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};

/// Failures allowed within the window before logins for that email are refused.
pub(crate) const MAX_FAILURES: u32 = 10;
/// The window over which failures count.
pub(crate) const WINDOW_MINUTES: i64 = 15;

/// Counts recent login failures per email.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl LoginLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses when `key` has failed too often within the window; otherwise counts this attempt
    /// as a failure in advance (cleared by [`LoginLimiter::record_success`]), so that parallel
    /// guesses cannot all slip through while the slow password check runs.
    ///
    /// # Errors
    /// `Error::RateLimited` with the seconds until the window ends.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if let Some((count, since)) = failures.get(key) {
            let window_end = *since + Duration::minutes(WINDOW_MINUTES);
            if *count >= MAX_FAILURES && now < window_end {
                return Err(Error::RateLimited {
                    retry_after_secs: (window_end - now).num_seconds().max(1) as u64,
                });
            }
        }
        Self::count(&mut failures, key, now);
        Ok(())
    }

    fn count(failures: &mut HashMap<String, (u32, DateTime<Utc>)>, key: &str, now: DateTime<Utc>) {
        // Bound memory against a flood of distinct emails.
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| now - *since < Duration::minutes(WINDOW_MINUTES));
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, now));
        if now - entry.1 >= Duration::minutes(WINDOW_MINUTES) {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Clears the count after a successful login.
    pub fn record_success(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_then_reopens() {
        let limiter = LoginLimiter::new();
        let t0 = Utc::now();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check("a@b.cn", t0).is_ok());
        }
        assert!(matches!(
            limiter.check("a@b.cn", t0),
            Err(Error::RateLimited { .. })
        ));
        assert!(limiter.check("other@b.cn", t0).is_ok());
        let later = t0 + Duration::minutes(WINDOW_MINUTES + 1);
        assert!(limiter.check("a@b.cn", later).is_ok());
        limiter.record_success("a@b.cn");
        for _ in 0..MAX_FAILURES * 2 {
            assert!(limiter.check("a@b.cn", later).is_ok());
            limiter.record_success("a@b.cn");
        }
    }
}
