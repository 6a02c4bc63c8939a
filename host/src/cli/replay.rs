//! `switchyard replay FILE --plugin new.wasm`: run a recording's deliveries
//! offline against another version of the destination, each request answered
//! from the recording, and print how its requests and outcomes differ.
//! Exits 1 on any difference: a recording is a golden file, and replaying it
//! is a regression test (the the book, `operating/reload.md`).
//!
//! Where it sits: reads what `switchyard record` (`cli/record.rs`) wrote; the
//! comparison is the shadow's ([`crate::trial::compare`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Limits;
use crate::imports::http::Egress;
use crate::runtime::{CallContext, Event, Kind, Outcome, Runtime};
use crate::trial::answers::{default_answer, Answers};
use crate::trial::capture::{Capture, Exchange, Redactor};
use crate::trial::compare::{compare, Difference, OutcomeRecord};
use crate::trial::recording::Recording;

/// The flags, for the `Command` enum.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The recording (from `switchyard record`).
    pub file: PathBuf,
    /// The destination component to replay it against.
    #[arg(long)]
    pub plugin: PathBuf,
    /// Print every difference in full, not only the first of each delivery's.
    #[arg(long)]
    pub verbose: bool,
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let recording = Recording::read(&args.file)?;
    let path = &args.plugin;
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let runtime = Runtime::new(super::try_run::user_cache_dir(), 4)?;
    let plugin = runtime
        .load(&recording.plugin, &bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if plugin.kind() != Kind::Destination {
        anyhow::bail!(
            "{}: a transformation; replay runs destinations",
            path.display()
        );
    }
    println!(
        "replaying {} deliveries of {} (recorded on {} {}) against {} {} (sha256 {})",
        recording.deliveries.len(),
        recording.destination,
        recording.plugin,
        recording.plugin_version,
        path.display(),
        plugin.metadata.version,
        plugin.sha256
    );
    if recording.deliveries.is_empty() {
        anyhow::bail!(
            "{}: the recording holds no delivery: nothing to compare",
            args.file.display()
        );
    }
    let settings = recording.settings.to_string();
    let mut differing = 0;
    for (i, delivery) in recording.deliveries.iter().enumerate() {
        let events: Vec<Event> = delivery
            .events
            .iter()
            .map(|e| Event {
                message_id: e.message_id.clone(),
                event_type: e.event_type.into(),
                json: e.json.clone(),
            })
            .collect();
        let capture = Capture::default();
        let ctx = CallContext {
            destination: Arc::from(recording.destination.as_str()),
            transform: None,
            limits: Limits::default(),
            egress: Egress::Replay(Arc::new(Answers::new(
                delivery.requests.clone(),
                Redactor::default(),
                default_answer(),
            ))),
            counters: Default::default(),
            observers: {
                let mut o = crate::runtime::Observers::default();
                o.push(Arc::new(capture.clone()));
                o
            },
            clock: (!delivery.clock.is_empty()).then(|| delivery.clock.clone().into()),
            secrets: Default::default(),
            warm: false,
        };
        let outcomes: Vec<OutcomeRecord> = match plugin.deliver(&ctx, &settings, &events).await {
            Ok(o) => o.iter().map(|o| Redactor::default().outcome(o)).collect(),
            Err(e) => {
                let failed = Outcome::Retry {
                    reason: format!("the call failed: {e}"),
                    after: None,
                };
                vec![OutcomeRecord::from(&failed); events.len()]
            }
        };
        let sent: Vec<Exchange> = capture
            .take()
            .unwrap_or_default()
            .iter()
            .map(|e| Redactor::default().exchange(e))
            .collect();
        let diffs = compare((&delivery.requests, &delivery.outcomes), (&sent, &outcomes));
        report(i + 1, events.len(), &diffs, args.verbose);
        if !diffs.is_empty() {
            differing += 1;
        }
    }
    if differing == 0 {
        println!("no differences");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{differing} of {} deliveries differ",
        recording.deliveries.len()
    );
    Ok(ExitCode::FAILURE)
}

/// Print one delivery's result.
fn report(n: usize, events: usize, diffs: &[Difference], verbose: bool) {
    if diffs.is_empty() {
        println!("delivery {n} ({events} events): same");
        return;
    }
    println!(
        "delivery {n} ({events} events): {} differences",
        diffs.len()
    );
    let shown = if verbose {
        diffs.len()
    } else {
        diffs.len().min(5)
    };
    for d in &diffs[..shown] {
        println!("  {}", d.what);
        println!("    - recorded: {}", d.expected);
        println!("    + replayed: {}", d.got);
    }
    if shown < diffs.len() {
        println!("  ... {} more (--verbose)", diffs.len() - shown);
    }
}
