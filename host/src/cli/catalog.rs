//! `switchyard catalog list|show|build`: Segment's action destinations, each
//! usable as the plugin `catalog:NAME` ([`crate::catalog`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::catalog::index::{Entry, Field};
use crate::catalog::stanza::Stanza;
use crate::catalog::{self as cat, Source};
use crate::config::Config;

/// The subcommands of `switchyard catalog`.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Every entry: name, whether it is verified against Segment's runtime, actions, presets.
    List {
        /// `table` (the default) or `json`: an array of one object per entry.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One entry: its settings, actions with their fields, and presets.
    Show {
        /// The entry (Segment's directory name, e.g. `braze`).
        name: String,
        /// `table` (text, the default) or `json`.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// A `[[destinations]]` table for an entry, its presets written out as subscriptions to edit.
    New {
        /// The entry.
        entry: String,
        /// The destination's name (default: the entry's).
        #[arg(long)]
        name: Option<String>,
    },
    /// A `[[destinations]]` table from a destination as Segment's Public API exports it
    /// ("Get Destination", with its subscriptions from "List Subscriptions from Destination").
    Import {
        /// The destination's JSON (it may hold `subscriptions` too).
        file: PathBuf,
        /// Its subscriptions' JSON, when in a file of their own.
        #[arg(long)]
        subscriptions: Option<PathBuf>,
    },
    /// Build entries into a plugins directory (`catalog:NAME.wasm`), kept until their inputs change.
    Build {
        /// The entries.
        #[arg(required = true)]
        names: Vec<String>,
        /// Build into this configuration's `[plugins] dir` (default: the default config's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Build into this folder instead.
        #[arg(long, conflicts_with = "config")]
        out: Option<PathBuf>,
    },
}

/// How `list` and `show` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for a terminal.
    Table,
    /// JSON for tools.
    Json,
}

/// Run a `catalog` subcommand.
pub async fn catalog(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::List { format } => {
            let index = cat::read_index().await?;
            match format {
                Format::Json => say(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&list_json(&index.entries))?
                )),
                Format::Table => say(&list_table(&index.entries, &index.version)),
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Show { name, format } => {
            let index = cat::read_index().await?;
            let Some(entry) = index.entry(&name) else {
                let near = index.near(&name);
                let hint = if near.is_empty() {
                    "`switchyard catalog list` lists them".to_string()
                } else {
                    format!("did you mean {}?", near.join(", "))
                };
                anyhow::bail!("no catalog entry named `{name}`: {hint}");
            };
            match format {
                Format::Json => say(&format!("{}\n", serde_json::to_string_pretty(entry)?)),
                Format::Table => say(&show_text(entry)),
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::New { entry, name } => {
            let index = cat::read_index().await?;
            let entry = entry.strip_prefix(cat::PREFIX).unwrap_or(&entry);
            let Some(found) = index.entry(entry) else {
                anyhow::bail!(
                    "no catalog entry named `{entry}`: `switchyard catalog list` lists them"
                );
            };
            let mut stanza = Stanza::from_entry(found, name.as_deref().unwrap_or(entry));
            stanza.allowed_hosts = origins(&stanza).await?;
            say(&stanza.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Import {
            file,
            subscriptions,
        } => {
            let index = cat::read_index().await?;
            let export = super::read_json(&file)?;
            let subs = subscriptions.as_deref().map(super::read_json).transpose()?;
            let mut stanza = Stanza::from_export(&index, &export, subs.as_ref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            stanza.allowed_hosts = origins(&stanza).await?;
            say(&stanza.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Build { names, config, out } => {
            let out = match (out, config) {
                (Some(out), _) => out,
                (None, Some(file)) => Config::load(&file)?.plugins_dir,
                (None, None) => {
                    Config::parse(super::DEFAULT_CONFIG, "<default config>", Path::new("."))?
                        .plugins_dir
                }
            };
            let names: Vec<&str> = names
                .iter()
                .map(|n| n.strip_prefix(cat::PREFIX).unwrap_or(n))
                .collect();
            let said = Source::find()?.build(&names, &out).await?;
            println!("{said}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The vendor origins the stanza's destination calls: a dry run of one event
/// of each type through the entry (built first when needed), secrets as
/// placeholders, nothing sent.
async fn origins(stanza: &Stanza) -> anyhow::Result<Vec<String>> {
    use crate::imports::http::DryRun;
    use crate::runtime::{CallContext, Runtime};
    let dir = cat::cache_dir();
    Source::find()?
        .build(&[stanza.entry.as_str()], &dir)
        .await?;
    let plugin_name = format!("{}{}", cat::PREFIX, stanza.entry);
    let file = crate::plugins::plugin_path(&dir, &plugin_name);
    let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let runtime = Runtime::new(super::user_cache_dir(), 2)?;
    let plugin = runtime.load(&plugin_name, &bytes).await?;
    let dry = std::sync::Arc::new(DryRun::new(Vec::new(), None));
    let ctx = CallContext::dry_run(&stanza.name, dry.clone());
    let mut settings = serde_json::Value::Object(stanza.settings.clone());
    for (key, _) in &stanza.secrets {
        settings[key.as_str()] = serde_json::Value::String(format!("placeholder-{key}"));
    }
    if let Some(subs) = &stanza.subscriptions {
        settings["subscriptions"] = serde_json::Value::Array(subs.clone());
    }
    // Normalised as ingest does it (receivedAt and the rest), as the host would deliver them.
    let events = super::try_run::events_of(
        std::path::Path::new("<sample events>"),
        serde_json::from_str(SAMPLE_EVENTS).expect("the sample events are JSON"),
    )?;
    // Whatever the outcomes (placeholder credentials), the requests show the origins.
    let _ = plugin.deliver(&ctx, &settings.to_string(), &events).await;
    let mut origins: Vec<String> = dry
        .take()
        .into_iter()
        .filter_map(|(req, _)| reqwest::Url::parse(&req.url).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// One event of each type, for [`origins`].
const SAMPLE_EVENTS: &str = r#"[
  {"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":10,"currency":"USD","products":[{"product_id":"p1","price":10,"quantity":1}]},"context":{"traits":{"email":"a@example.com"}}},
  {"type":"identify","userId":"u1","traits":{"email":"a@example.com","first_name":"A"}},
  {"type":"page","userId":"u1","name":"Home","properties":{"url":"https://example.com/"}},
  {"type":"screen","userId":"u1","name":"Home"},
  {"type":"group","userId":"u1","groupId":"g1","traits":{"name":"G"}},
  {"type":"alias","userId":"u1","previousId":"u0"}
]"#;

/// Print `text`; a reader that stopped reading (`| head`) is no error.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `list --format json`: one object per entry, the fields tools read first.
fn list_json(entries: &[Entry]) -> serde_json::Value {
    entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "title": e.title,
                "plugin": format!("{}{}", cat::PREFIX, e.name),
                "verified": e.verified,
                "reason": e.reason,
                "mode": e.mode,
                "actions": e.actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                "presets": e.automatic_presets().count(),
                "oauth_refresh": e.oauth_refresh,
                "deletion": e.deletion,
            })
        })
        .collect()
}

fn list_table(entries: &[Entry], version: &str) -> String {
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:width$}  {:8}  {:>7}  {:>7}  title\n",
        "name", "verified", "actions", "presets"
    );
    for e in entries {
        out.push_str(&format!(
            "{:width$}  {:8}  {:>7}  {:>7}  {}\n",
            e.name,
            if e.verified { "yes" } else { "no" },
            e.actions.len(),
            e.automatic_presets().count(),
            e.title
        ));
    }
    let verified = entries.iter().filter(|e| e.verified).count();
    out.push_str(&format!(
        "\n{} entries of @segment/action-destinations {version}, {verified} verified; \
         `switchyard catalog show NAME` for one, plugin = \"catalog:NAME\" to use it\n",
        entries.len()
    ));
    out
}

fn show_text(e: &Entry) -> String {
    let mut out = format!("{} (plugin = \"catalog:{}\")\n", e.title, e.name);
    if !e.description.is_empty() {
        out.push_str(&format!("{}\n", one_line(&e.description)));
    }
    out.push_str(&match (&e.verified, &e.reason) {
        (true, _) => "verified against Segment's runtime\n".to_string(),
        (false, Some(why)) => format!("not verified: {why}\n"),
        (false, None) => "not verified\n".to_string(),
    });
    out.push_str("\nsettings:\n");
    out.push_str(&fields_text(&e.settings, "  "));
    out.push_str("\nactions:\n");
    for a in &e.actions {
        out.push_str(&format!(
            "  {}: {}{}\n",
            a.name,
            a.title,
            if a.batching { " (batches)" } else { "" }
        ));
        if let Some(sub) = &a.default_subscription {
            out.push_str(&format!("    default subscribe: {sub}\n"));
        }
        out.push_str(&fields_text(&a.fields, "    "));
    }
    out.push_str("\npresets (run when `subscriptions` is absent):\n");
    for p in e.automatic_presets() {
        out.push_str(&format!(
            "  {}: {} when {}\n",
            p.name, p.partner_action, p.subscribe
        ));
    }
    out
}

fn fields_text(fields: &[Field], indent: &str) -> String {
    fields
        .iter()
        .map(|f| {
            format!(
                "{indent}{}{} ({}{}){}\n",
                f.name,
                if f.required { "*" } else { "" },
                if f.multiple { "list of " } else { "" },
                f.kind,
                if f.label.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.label)
                }
            )
        })
        .collect()
}

fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}
