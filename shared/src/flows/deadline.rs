//! Budgeting work against the invocation's end, so that no claim is taken (and no Codat call
//! started) that cannot finish and be recorded before Lambda stops the invocation.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept back after a call's retry budget to record its outcome.
pub const RECORDING: Duration = Duration::from_secs(3);

/// When the invocation ends, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No known end (tests, local tools).
    pub const NONE: Deadline = Deadline(None);

    pub fn at(end: Instant) -> Self {
        Deadline(Some(end))
    }

    /// From the Lambda context's deadline (milliseconds since the epoch), read as the
    /// invocation starts. Lambda's is always ahead then; `0` or one already past comes from an
    /// emulator that sets none (`cargo lambda watch`), and means unknown.
    pub fn from_epoch_ms(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        if deadline_ms <= now_ms {
            return Deadline::NONE;
        }
        Deadline::at(Instant::now() + Duration::from_millis(deadline_ms - now_ms))
    }

    /// Whether work that may take up to `needed` (plus recording it) finishes in time.
    pub fn allows(&self, needed: Duration) -> bool {
        self.0.is_none_or(|end| Instant::now() + needed + RECORDING <= end)
    }

    pub fn instant(&self) -> Option<Instant> {
        self.0
    }

    pub fn remaining(&self) -> Option<Duration> {
        self.0.map(|end| end.saturating_duration_since(Instant::now()))
    }
}

/// Time-boxed phases within a deadline: each phase may start work until its share of the
/// time left is used up (unused time passes on to the later phases), and never past the
/// deadline itself. So a slow first phase cannot starve the last.
#[derive(Debug)]
pub struct Phases {
    deadline: Deadline,
    left: u32,
    box_end: Option<Instant>,
}

impl Phases {
    pub fn new(deadline: Deadline, phases: u32) -> Self {
        Self { deadline, left: phases.max(1), box_end: None }
    }

    /// Starts the next phase: its box is an equal share of the time left.
    pub fn next(&mut self) {
        self.box_end = self.deadline.remaining().map(|left| Instant::now() + left / self.left.max(1));
        self.left = self.left.saturating_sub(1);
    }

    /// Whether the current phase may start a unit of work that may take up to `needed`.
    pub fn may_start(&self, needed: Duration) -> bool {
        self.deadline.allows(needed) && self.box_end.is_none_or(|end| Instant::now() < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_started_only_if_it_can_finish() {
        let soon = Deadline::at(Instant::now() + Duration::from_secs(10));
        assert!(soon.allows(Duration::from_secs(5)));
        assert!(!soon.allows(Duration::from_secs(8)), "8 s of calls and 3 s to record them do not fit in 10 s");
        assert!(Deadline::NONE.allows(Duration::from_secs(3600)));
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(Deadline::from_epoch_ms(now_ms + 60_000).allows(Duration::from_secs(50)));
        assert!(!Deadline::from_epoch_ms(now_ms + 60_000).allows(Duration::from_secs(58)));
        assert_eq!(Deadline::from_epoch_ms(now_ms - 1), Deadline::NONE, "an emulator's past deadline is unknown");
    }

    #[test]
    fn a_phase_stops_at_its_share_and_leaves_the_rest_to_the_later_ones() {
        let mut phases = Phases::new(Deadline::at(Instant::now() + Duration::from_secs(60)), 3);
        phases.next();
        assert!(phases.may_start(Duration::from_secs(1)));
        // Pretend the first phase used its share: the box closes, the deadline still allows.
        phases.box_end = Some(Instant::now());
        assert!(!phases.may_start(Duration::from_secs(1)));
        phases.next();
        assert!(phases.may_start(Duration::from_secs(1)), "the next phase gets its own box");
        let mut unbounded = Phases::new(Deadline::NONE, 2);
        unbounded.next();
        assert!(unbounded.may_start(Duration::from_secs(3600)));
    }
}
