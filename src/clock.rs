//! The injectable clock: every "now" in Formwork comes from here, so tests can move time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC, truncated to microseconds (what both databases store).
    fn now(&self) -> DateTime<Utc>;
}

/// A cheaply clonable handle to the process's clock.
#[derive(Clone, Debug)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Wraps a clock implementation.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self(clock)
    }

    /// The real wall clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate(Utc::now())
    }
}

/// Wall clock plus an adjustable offset; in-process tests move it with [`OffsetClock::advance`].
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_micros: AtomicI64,
}

impl OffsetClock {
    /// A clock that starts at the wall time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX / 2);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        truncate(Utc::now() + offset)
    }
}

/// Wall clock plus an offset in seconds read from a file on every call.
///
/// This is how a test moves the clock of a spawned `formwork` process. It is only honoured in
/// debug builds (see `config`), so a release binary can never be made to run on a fake time.
#[derive(Debug)]
pub struct FileOffsetClock {
    path: PathBuf,
}

impl FileOffsetClock {
    /// A clock whose offset (decimal seconds, may be negative) lives in `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl Clock for FileOffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset_secs = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let offset = Duration::microseconds((offset_secs * 1_000_000.0) as i64);
        truncate(Utc::now() + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_moves_forward() {
        let clock = OffsetClock::new();
        let before = clock.now();
        clock.advance(Duration::days(3));
        let after = clock.now();
        assert!(after - before >= Duration::days(3));
        assert!(after - before < Duration::days(3) + Duration::seconds(5));
    }

    #[test]
    fn file_clock_reads_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clock");
        let clock = FileOffsetClock::new(path.clone());
        let base = clock.now();
        std::fs::write(&path, "3600").expect("write");
        assert!(clock.now() - base >= Duration::seconds(3599));
        std::fs::write(&path, "not a number").expect("write");
        assert!(clock.now() - base < Duration::seconds(60));
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let now = SystemClock.now();
        assert_eq!(now.timestamp_subsec_nanos() % 1000, 0);
    }
}
