//! Rate limits: after too many login failures for one email, further attempts wait; each API
//! token may make so many requests a minute.
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

/// Shards of the token limiter's table (requests of different tokens rarely share a lock).
const SHARDS: usize = 16;

/// Requests per API token: a bucket holding a minute's allowance, refilled continuously, kept in
/// memory per process (behind several processes the effective limit is their number times it).
#[derive(Debug)]
pub struct TokenLimiter {
    per_minute: u32,
    shards: Vec<Mutex<HashMap<uuid::Uuid, (f64, std::time::Instant)>>>,
}

impl TokenLimiter {
    /// A limiter allowing `per_minute` requests per token (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Takes one request from `token`'s allowance.
    ///
    /// # Errors
    /// `Error::RateLimited` with the seconds until the next request is allowed.
    pub fn check(&self, token: uuid::Uuid) -> Result<()> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let shard = (token.as_u128() % SHARDS as u128) as usize;
        let Some(Ok(mut buckets)) = self.shards.get(shard).map(|m| m.lock()) else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        if buckets.len() > 100_000 {
            // Bound memory: a full bucket is the same as none.
            buckets.retain(|_, (left, at)| {
                *left + now.duration_since(*at).as_secs_f64() * per_second < capacity
            });
        }
        let (left, at) = buckets.entry(token).or_insert((capacity, now));
        *left = (*left + now.duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            Ok(())
        } else {
            Err(Error::RateLimited {
                retry_after_secs: ((1.0 - *left) / per_second).ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_token_gets_a_minutes_allowance_then_waits() {
        let limiter = TokenLimiter::new(3);
        let token = uuid::Uuid::from_u128(7);
        let other = uuid::Uuid::from_u128(8);
        for _ in 0..3 {
            assert!(limiter.check(token).is_ok());
        }
        match limiter.check(token) {
            Err(Error::RateLimited { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            limiter.check(other).is_ok(),
            "each token has its own allowance"
        );
        let open = TokenLimiter::new(0);
        for _ in 0..10_000 {
            assert!(open.check(token).is_ok());
        }
    }
}
