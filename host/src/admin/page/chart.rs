//! The destination page's charts, drawn by the server as SVG: delivered,
//! retried and dead-lettered events per minute over the last hour (from
//! `observe/history.rs`), one stacked bar a minute; and the adaptive
//! concurrency limit over the last ten minutes, a step line with each move's
//! reason (from `dispatch/concurrency.rs`).

use maud::{html, Markup};

use crate::observe::history::Minute;

/// Drawing area, in SVG units.
const WIDTH: u64 = 600;
const HEIGHT: u64 = 160;
/// Room for the axis labels.
const LEFT: u64 = 48;
const BOTTOM: u64 = 20;

/// One series: its label, its CSS class, and its count in a minute.
type Series = (&'static str, &'static str, fn(&Minute) -> u64);

/// The series, bottom to top.
const SERIES: [Series; 3] = [
    ("delivered", "ok", |m| m.ok),
    ("retried", "retried", |m| m.retried),
    ("dead-lettered", "dead", |m| m.dead),
];

/// A rounded-up scale top for `max` (1, 2 or 5 times a power of ten).
fn nice_top(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= max {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Both charts' axes: 0 to `top` up the left, `since` to now along the bottom.
fn axes(top: u64, since: &str) -> Markup {
    let plot = HEIGHT - BOTTOM;
    html! {
        line.axis x1=(LEFT) y1="0" x2=(LEFT) y2=(plot) {}
        line.axis x1=(LEFT) y1=(plot) x2=(WIDTH) y2=(plot) {}
        text x=(LEFT - 4) y="10" text-anchor="end" { (top) }
        text x=(LEFT - 4) y=(plot) text-anchor="end" { "0" }
        text x=(LEFT) y=(HEIGHT - 4) { (since) }
        text x=(WIDTH) y=(HEIGHT - 4) text-anchor="end" { "now" }
    }
}

/// The chart of `minutes` (oldest first, one per minute).
pub fn per_minute(minutes: &[Minute]) -> Markup {
    let max = minutes
        .iter()
        .map(|m| m.ok + m.retried + m.dead)
        .max()
        .unwrap_or(0);
    let top = nice_top(max.max(1));
    let n = minutes.len().max(1) as u64;
    let bar = (WIDTH - LEFT) / n;
    let plot = HEIGHT - BOTTOM;
    let scale = |v: u64| v.saturating_mul(plot) / top;
    // Each count's bar: (x, y, height, class, count, label), stacked bottom up.
    let mut rects = Vec::new();
    for (i, m) in minutes.iter().enumerate() {
        let x = LEFT + i as u64 * bar;
        let mut base = plot;
        for (label, class, count) in SERIES {
            let v = count(m);
            if v > 0 {
                let h = scale(v).max(1);
                base = base.saturating_sub(h);
                rects.push((x, base, h, class, v, label));
            }
        }
    }
    let width = bar.saturating_sub(1).max(1);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            role="img" aria-label="events per minute over the last hour" {
            title { "Delivered, retried and dead-lettered events per minute, last hour" }
            (axes(top, "60 min ago"))
            @for (x, y, h, class, v, label) in rects {
                rect class=(class) x=(x) y=(y) width=(width) height=(h) {
                    title { (v) " " (label) }
                }
            }
        }
        p.legend {
            @for (label, class, _) in SERIES {
                span class={"swatch " (class)} {} " " (label) " "
            }
        }
    }
}

/// How far back the limit's chart reaches.
const LIMIT_SPAN: std::time::Duration = std::time::Duration::from_secs(600);

/// The adaptive limit over the last ten minutes: `moves` are (how long ago,
/// the limit it moved to, why), oldest first; `now` is the limit now and `max`
/// its ceiling.
pub fn limit_steps(moves: &[(std::time::Duration, u32, &str)], now: u32, max: u32) -> Markup {
    let span = LIMIT_SPAN.as_secs_f64();
    let plot = HEIGHT - BOTTOM;
    let top = u64::from(max.max(1));
    let x = |ago: std::time::Duration| {
        let f = 1.0 - (ago.as_secs_f64() / span).min(1.0);
        LEFT + ((WIDTH - LEFT) as f64 * f) as u64
    };
    let y = |limit: u32| plot - u64::from(limit).min(top) * plot / top;
    // The limit before the oldest move shown: where the line starts.
    let shown: Vec<_> = moves.iter().filter(|m| m.0 <= LIMIT_SPAN).collect();
    let first = moves
        .iter()
        .rev()
        .find(|m| m.0 > LIMIT_SPAN)
        .map_or_else(|| shown.first().map_or(now, |m| m.1), |m| m.1);
    let mut points = vec![(LEFT, y(first))];
    for (ago, limit, _) in &shown {
        let px = x(*ago);
        points.push((px, points.last().map_or(y(first), |p| p.1)));
        points.push((px, y(*limit)));
    }
    points.push((WIDTH, y(now)));
    let line: String = points
        .iter()
        .map(|(px, py)| format!("{px},{py}"))
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        svg.chart.limit xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            role="img" aria-label="the concurrency limit over the last ten minutes" {
            title { "Batches allowed in flight, last ten minutes" }
            (axes(top, "10 min ago"))
            polyline.ok fill="none" stroke-width="2" points=(line) {}
            @for (ago, limit, why) in &shown {
                circle.ok cx=(x(*ago)) cy=(y(*limit)) r="2" {
                    title { (limit) ": " (why) " (" (ago.as_secs()) " s ago)" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_step_line_with_each_move_and_its_reason() {
        let s = std::time::Duration::from_secs;
        let moves = [
            (s(900), 4, "round trips flat at the limit: raised"),
            (s(300), 16, "round trips flat at the limit: raised"),
            (s(60), 8, "back-pressure: halved"),
        ];
        let svg = limit_steps(&moves, 9, 16).into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("8: back-pressure: halved (60 s ago)"), "{svg}");
        // It starts at 4 (the move before the window), ends at 9, at the right.
        let start = format!("{LEFT},{}", (HEIGHT - BOTTOM) - 4 * (HEIGHT - BOTTOM) / 16);
        assert!(svg.contains(&format!("points=\"{start} ")), "{svg}");
        let end = format!("{WIDTH},{}", (HEIGHT - BOTTOM) - 9 * (HEIGHT - BOTTOM) / 16);
        assert!(svg.contains(&format!(" {end}\"")), "{svg}");
    }

    #[test]
    fn scale_tops_are_round() {
        assert_eq!(nice_top(1), 1);
        assert_eq!(nice_top(3), 5);
        assert_eq!(nice_top(7), 10);
        assert_eq!(nice_top(120), 200);
        assert_eq!(nice_top(u64::MAX), u64::MAX);
    }

    #[test]
    fn one_rect_per_nonzero_count_with_its_figure() {
        let minutes = vec![
            Minute {
                minute: 1,
                ..Minute::counts(10, 0, 2)
            },
            Minute {
                minute: 2,
                ..Minute::default()
            },
        ];
        let svg = per_minute(&minutes).into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("10 delivered") && svg.contains("2 dead-lettered"));
        assert!(!svg.contains("retried</title>"));
    }
}
