//! The wall clock a guest reads (`wasi:clocks/wall-clock`), when its call is
//! captured or replayed (a trial, a recording): a destination that stamps a body
//! with the time (`sentAt`) sends, in a replay or a shadow call, what it sent
//! in the recorded or serving call.
//!
//! - [`RecordingClock`]: the real time, each reading told to the call's
//!   observers that keep the clock ([`super::ExchangeObserver::keeps_clock`]);
//! - [`ReplayClock`]: the recorded readings, in order; the last one again once
//!   they are used up (or the real time, when none were recorded).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use wasmtime_wasi::HostWallClock;

use super::Observers;

fn real_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The real wall clock, each reading told to the observers that keep it.
pub struct RecordingClock(pub Observers);

impl HostWallClock for RecordingClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let now = real_now();
        self.0.clock_read(now.as_nanos() as u64);
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
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::imports::http::{Error, Request, Response};
    use crate::imports::secrets::Sealed;
    use crate::runtime::{ExchangeObserver, Sending};

    /// Keeps the readings only.
    #[derive(Default)]
    struct Readings(Mutex<Vec<u64>>);

    struct Nothing;
    impl Sending for Nothing {
        fn answered(self: Box<Self>, _: &Result<Response, Error>, _: Option<&Sealed>) {}
    }

    impl ExchangeObserver for Readings {
        fn sending(&self, _: &Request, _: Option<&Sealed>) -> Box<dyn Sending> {
            Box::new(Nothing)
        }
        fn keeps_clock(&self) -> bool {
            true
        }
        fn clock_read(&self, ns: u64) {
            self.0.lock().unwrap().push(ns);
        }
    }

    #[test]
    fn a_replay_clock_reads_the_recording_then_stays_on_its_last_reading() {
        let readings = Arc::new(Readings::default());
        let mut observers = Observers::default();
        observers.push(readings.clone());
        let rec = RecordingClock(observers);
        let (a, b) = (rec.now(), rec.now());
        let kept = readings.0.lock().unwrap().clone();
        assert_eq!(kept, vec![a.as_nanos() as u64, b.as_nanos() as u64]);
        let replay = ReplayClock::new(&kept);
        assert_eq!((replay.now(), replay.now(), replay.now()), (a, b, b));
    }
}
