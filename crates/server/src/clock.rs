//! The server's clock. Production reads the system time; tests may shift it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix milliseconds, with an adjustable offset for tests.
///
/// The offset is set only by the process environment (`TESSERA_TEST_CLOCK_OFFSET_MS`, or a file
/// named by `TESSERA_TEST_CLOCK_FILE` that tests rewrite to move time forward), documented as
/// test hooks, never from a request: the server never trusts a client's clock.
#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
    offset_file: Option<Arc<std::path::PathBuf>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock shifted by `offset_ms`.
    pub fn with_offset(offset_ms: i64) -> Self {
        let c = Self::default();
        c.offset_ms.store(offset_ms, Ordering::Relaxed);
        c
    }

    /// The system clock shifted by the number of milliseconds written in `path` (re-read on
    /// every call; a missing or unreadable file means no shift). For tests only.
    pub fn with_offset_file(path: std::path::PathBuf) -> Self {
        Clock {
            offset_ms: Arc::default(),
            offset_file: Some(Arc::new(path)),
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let file = self
            .offset_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.as_path()).ok())
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        sys + self.offset_ms.load(Ordering::Relaxed) + file
    }

    /// Now, in Unix seconds.
    pub fn now_secs(&self) -> u64 {
        (self.now_ms() / 1000).max(0) as u64
    }
}

/// Formats Unix milliseconds as npm does: `2025-01-01T00:00:00.000Z`.
pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_npm() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_735_689_600_123), "2025-01-01T00:00:00.123Z");
    }
}
