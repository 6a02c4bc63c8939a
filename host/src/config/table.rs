//! What every section's validation shares: where a table is ([`At`], to name
//! its keys in errors), a component's `limits`, and what a name may be.
//!
//! Where it sits: the leaf of `config/`; `validate.rs`, `secrets.rs` and
//! `transforms.rs` each use it.

use super::raw::{default_timeout_ms, either, RawLimits};
use super::{Invalid, Limits, MAX_MEMORY_MB};

/// Where a table is (`destinations[2]`), to name its keys in errors.
pub(super) struct At(pub(super) String);

impl At {
    /// The error of `field` in this table.
    pub(super) fn err(&self, field: &str, message: impl Into<String>) -> Invalid {
        (format!("{}.{field}", self.0), message.into())
    }
}

/// `limits = { memory_mb, timeout_ms }`.
pub(super) fn limits(at: &At, l: &RawLimits) -> Result<Limits, Invalid> {
    if l.memory_mb == 0 || l.memory_mb > MAX_MEMORY_MB {
        return Err(at.err(
            "limits.memory_mb",
            format!("must be between 1 and {MAX_MEMORY_MB}"),
        ));
    }
    let timeout = either(l.timeout_ms, l.timeout, default_timeout_ms())
        .map_err(|m| at.err("limits.timeout", m))?;
    if timeout.is_zero() {
        return Err(at.err(
            "limits.timeout_ms",
            "must be > 0 (as timeout_ms or timeout)",
        ));
    }
    Ok(Limits {
        memory_bytes: (l.memory_mb as usize) << 20,
        timeout,
    })
}

/// A destination or plugin name: 1 to 64 letters, digits, `-` and `_` (a
/// destination's plugin may also be `catalog:` and such a name).
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
