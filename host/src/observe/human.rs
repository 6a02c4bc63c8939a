//! Figures as a person reads them, for the status page and `switchyard status`.

/// Milliseconds in the largest units that read well: `224 ms`, `3.2 s`,
/// `42 s`, `3m 44s`, `2h 5m`, `3d 4h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        10_000..60_000 => format!("{s} s"),
        60_000..3_600_000 => format!("{}m {}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_in_human_units() {
        for (ms, text) in [
            (0, "0 ms"),
            (224, "224 ms"),
            (3_200, "3.2 s"),
            (42_000, "42 s"),
            (224_037, "3m 44s"),
            (7_500_000, "2h 5m"),
            (273_600_000, "3d 4h"),
        ] {
            assert_eq!(super::duration(ms), text);
        }
    }
}
