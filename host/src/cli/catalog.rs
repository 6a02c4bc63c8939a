//! `switchyard catalog list|show|build`: Segment's action destinations, each
//! usable as the plugin `catalog:NAME` ([`crate::catalog`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::catalog::index::{Entry, Field};
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
