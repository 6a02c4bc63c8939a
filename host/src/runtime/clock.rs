//! The wall clock a guest reads (`wasi:clocks/wall-clock`), when its call is
//! captured or replayed ([`crate::trial`]): a destination that stamps a body
//! with the time (`sentAt`) sends, in a replay or a shadow call, what it sent
//! in the recorded or serving call.
//!
//! - [`RecordingClock`]: the real time, each reading kept on the call's capture;
//! - [`ReplayClock`]: the recorded readings, in order; the last one again once
//!   they are used up (or the real time, when none were recorded).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use wasmtime_wasi::HostWallClock;

use crate::trial::capture::Capture;

fn real_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The real wall clock, each reading recorded on a capture.
pub struct RecordingClock(pub Capture);

impl HostWallClock for RecordingClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let now = real_now();
        self.0.read_clock(now.as_nanos() as u64);
        now
    }
}

/// Recorded readings (nanoseconds since the epoch), given in order.
pub struct ReplayClock {
    left: Mutex<(VecDeque<u64>, Option<u64>)>,
}

impl ReplayClock {
    /// A clock that reads `readings`, in order.
    pub fn new(readings: &[u64]) -> ReplayClock {
        ReplayClock {
            left: Mutex::new((readings.iter().copied().collect(), None)),
        }
    }
}

impl HostWallClock for ReplayClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let mut g = self.left.lock().expect("clock lock");
        let (left, last) = &mut *g;
        match left.pop_front().or(*last) {
            Some(ns) => {
                *last = Some(ns);
                Duration::from_nanos(ns)
            }
            None => real_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_clock_reads_the_recording_then_stays_on_its_last_reading() {
        let capture = Capture::default();
        let rec = RecordingClock(capture.clone());
        let (a, b) = (rec.now(), rec.now());
        let readings = capture.clock();
        assert_eq!(readings, vec![a.as_nanos() as u64, b.as_nanos() as u64]);
        let replay = ReplayClock::new(&readings);
        assert_eq!((replay.now(), replay.now(), replay.now()), (a, b, b));
    }
}
