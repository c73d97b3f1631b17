//! When a failed delivery is tried again.
//!
//! The first attempt is made at once; after the n-th failed attempt the schedule's n-th delay
//! is waited, and when the delays run out the notification is given up (`failed`). The
//! default, modelled on Svix's but denser at the start (most outages are short): 1 s, 5 s,
//! 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h — eleven attempts over about 23 hours.
//! Tests use a schedule of a few milliseconds.

use std::time::Duration;

/// The delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// A schedule text that is not a comma-separated list of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a retry schedule is a comma-separated list of milliseconds, e.g. 1000,5000,30000: {0}")]
pub struct ScheduleError(String);

impl Default for RetrySchedule {
    fn default() -> Self {
        let secs = [
            1,
            5,
            30,
            120,
            600,
            1800,
            3600,
            3 * 3600,
            6 * 3600,
            12 * 3600,
        ];
        RetrySchedule {
            delays: secs.into_iter().map(Duration::from_secs).collect(),
        }
    }
}

impl RetrySchedule {
    /// A schedule with these delays (an empty list means a single attempt).
    pub fn new(delays: Vec<Duration>) -> Self {
        RetrySchedule { delays }
    }

    /// Parses `"1000,5000,30000"` (milliseconds). An empty text means a single attempt.
    pub fn parse_ms(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(RetrySchedule { delays: Vec::new() });
        }
        text.split(',')
            .map(|part| {
                part.trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| ScheduleError(format!("{part:?} is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|delays| RetrySchedule { delays })
    }

    /// How long to wait after `attempts_made` attempts have all failed, or `None` when the
    /// notification is to be given up.
    pub fn delay_after(&self, attempts_made: u32) -> Option<Duration> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// The most attempts one notification gets.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }

    /// The delays, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_schedule_backs_off_and_ends() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(1), Some(Duration::from_secs(1)));
        assert_eq!(s.delay_after(2), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(10), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(s.delay_after(11), None);
        assert_eq!(s.max_attempts(), 11);
        assert!(s.delays().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parses_milliseconds_and_rejects_garbage() {
        let s = RetrySchedule::parse_ms("10, 20,40").unwrap();
        assert_eq!(s.delay_after(3), Some(Duration::from_millis(40)));
        assert_eq!(s.delay_after(4), None);
        assert_eq!(RetrySchedule::parse_ms("").unwrap().max_attempts(), 1);
        assert!(RetrySchedule::parse_ms("10,x").is_err());
        assert_eq!(s.delay_after(0), None);
    }
}
