//! Results: one JSON file per scenario, and an SVG for the latency curve.

use std::path::Path;

use serde_json::Value;

/// Write `bench/results/<scenario>.json` with the machine and the command.
pub fn write(out: &Path, scenario: &str, quick: bool, mut result: Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    result["scenario"] = scenario.into();
    result["date"] = chrono::Utc::now().format("%Y-%m-%d").to_string().into();
    result["quick"] = quick.into();
    result["machine"] = serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    result["reproduce"] = if quick {
        "make bench-quick"
    } else {
        "make bench"
    }
    .into();
    let file = out.join(format!("{scenario}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!("{scenario}: {}", file.display());
    Ok(())
}

/// A line chart of p50 and p99 latency against offered load.
pub fn latency_svg(out: &Path, points: &[(f64, f64, f64)]) -> anyhow::Result<()> {
    let (w, h, m) = (640.0, 360.0, 50.0);
    let max_x = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let sx = |x: f64| m + x / max_x * (w - 2.0 * m);
    let sy = |y: f64| h - m - y / max_y * (h - 2.0 * m);
    let line = |f: &dyn Fn(&(f64, f64, f64)) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{m}" y="20">End-to-end latency (ingest 200 → receipt) against offered load</text>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{xl}" text-anchor="middle">offered load (events/s)</text>
<text x="12" y="{cy}" transform="rotate(-90 12 {cy})" text-anchor="middle">latency (ms)</text>
<polyline fill="none" stroke="steelblue" stroke-width="2" points="{p50}"/>
<polyline fill="none" stroke="firebrick" stroke-width="2" points="{p99}"/>
<text x="{r}" y="{m}" text-anchor="end" fill="steelblue">p50</text>
<text x="{r}" y="{m2}" text-anchor="end" fill="firebrick">p99</text>
"#,
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        xl = h - 15.0,
        cy = h / 2.0,
        m2 = m + 15.0,
        p50 = line(&|p| p.1),
        p99 = line(&|p| p.2),
    );
    for p in points {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>\n",
            sx(p.0),
            h - m + 15.0,
            p.0
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\n</svg>\n",
        m - 4.0,
        sy(max_y / 1.1) + 4.0,
        max_y / 1.1
    ));
    std::fs::write(out.join("e2e-latency.svg"), svg)?;
    Ok(())
}

/// One sample of a drain: seconds since it began, batches in flight, the
/// concurrency limit, delivered events/s since the previous sample.
pub type Sample = (f64, u64, u64, f64);

/// Batches in flight and delivered events/s over time, one panel per run.
pub fn series_svg(out: &Path, file: &str, runs: &[(String, Vec<Sample>)]) -> anyhow::Result<()> {
    let (w, ph, m) = (640.0, 240.0, 50.0);
    let h = ph * runs.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{m}\" y=\"20\">Draining a backlog: batches in flight (blue), the limit (grey) and delivered events/s (red) over time</text>\n"
    );
    for (k, (label, points)) in runs.iter().enumerate() {
        let top = 30.0 + ph * k as f64;
        let bottom = top + ph - m;
        let max_t = points.iter().map(|p| p.0).fold(0.1, f64::max);
        let max_b = points
            .iter()
            .map(|p| p.1.max(p.2) as f64)
            .fold(1.0, f64::max)
            * 1.1;
        let max_e = points.iter().map(|p| p.3).fold(1.0, f64::max) * 1.1;
        let sx = |t: f64| m + t / max_t * (w - 2.0 * m);
        let line = |f: &dyn Fn(&Sample) -> f64, max: f64| {
            points
                .iter()
                .map(|p| {
                    format!(
                        "{:.1},{:.1}",
                        sx(p.0),
                        bottom - f(p) / max * (ph - m - 20.0)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        svg.push_str(&format!(
            "<text x=\"{m}\" y=\"{ty}\">vendor at {label}: {t:.1} s</text>\n<line x1=\"{m}\" y1=\"{bottom}\" x2=\"{r}\" y2=\"{bottom}\" stroke=\"black\"/>\n<polyline fill=\"none\" stroke=\"grey\" stroke-dasharray=\"4\" points=\"{lim}\"/>\n<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"{b}\"/>\n<polyline fill=\"none\" stroke=\"firebrick\" stroke-width=\"2\" points=\"{e}\"/>\n<text x=\"4\" y=\"{yb}\" fill=\"steelblue\">{mb:.0}</text>\n<text x=\"{r}\" y=\"{yb}\" text-anchor=\"end\" fill=\"firebrick\">{me:.0}/s</text>\n",
            ty = top + 14.0,
            t = max_t,
            r = w - m,
            lim = line(&|p| p.2 as f64, max_b),
            b = line(&|p| p.1 as f64, max_b),
            e = line(&|p| p.3, max_e),
            yb = top + 34.0,
            mb = max_b / 1.1,
            me = max_e / 1.1,
        ));
    }
    svg.push_str("</svg>\n");
    std::fs::write(out.join(file), svg)?;
    Ok(())
}
