//! Per-call resource limits of a guest: its linear-memory cap, and a tally of
//! the memory it was granted (reported as the destination's peak).

use wasmtime::ResourceLimiter;

/// Most table elements one instance may grow a table to.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The `ResourceLimiter` of one store.
#[derive(Debug)]
pub struct GuestLimits {
    /// Most linear memory the instance may hold, over all its memories, in bytes.
    memory_cap: usize,
    /// Bytes of linear memory granted so far, over all memories of the instance.
    granted: usize,
}

impl GuestLimits {
    /// Limits with a memory cap in bytes.
    pub fn new(memory_cap: usize) -> Self {
        Self {
            memory_cap,
            granted: 0,
        }
    }

    /// Bytes of linear memory the instance holds (initial sizes plus growth).
    pub fn granted(&self) -> usize {
        self.granted
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        if self.granted.saturating_add(growth) > self.memory_cap {
            wasmtime::bail!(
                "linear memory cap of {} MiB exceeded (asked for {} more bytes, holding {})",
                self.memory_cap >> 20,
                growth,
                self.granted
            );
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.granted += growth;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|max| desired <= max))
    }
}

/// Most characters of a guest-provided reason that the host keeps.
const MAX_REASON_CHARS: usize = 1_000;

/// A guest-provided reason, cut to [`MAX_REASON_CHARS`] (with `…`).
pub(super) fn clip(mut s: String) -> String {
    if s.len() > MAX_REASON_CHARS {
        let mut end = MAX_REASON_CHARS;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
