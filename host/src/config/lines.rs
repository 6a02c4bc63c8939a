//! Where a key is in the file: the line an error names, found from the key's
//! path (`destinations[0].retry.initial`) in a parse of the text that keeps
//! spans. Used only when an error is reported.

use toml::de::{DeTable, DeValue};

/// The line (from 1) of the key at `path`, or of the deepest part of the
/// path that exists (a misspelt key's table); `None` when the text does not
/// parse or the path names nothing in it.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: Option<&DeTable> = Some(doc.get_ref());
    let mut value: Option<&DeValue> = None;
    let mut at: Option<usize> = None;
    for segment in segments(path) {
        match segment {
            Segment::Key(name) => {
                let Some((key, v)) =
                    table.and_then(|t| t.iter().find(|(k, _)| **k.get_ref() == *name))
                else {
                    break;
                };
                at = Some(key.span().start);
                value = Some(v.get_ref());
            }
            Segment::Index(i) => {
                let Some(DeValue::Array(items)) = value else {
                    break;
                };
                let Some(item) = items.get(i) else { break };
                at = Some(item.span().start);
                value = Some(item.get_ref());
            }
        }
        table = match value {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
    }
    let at = at?;
    Some(text.get(..at)?.matches('\n').count() + 1)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a[0].b` → `a`, `0`, `b`.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[[destinations]]\nname = \"a\"\n\n[[destinations]]\nname = \"b\"\nretry = { initial = 3 }\n";

    #[test]
    fn a_key_is_found_through_tables_arrays_and_inline_tables() {
        assert_eq!(line_of(TEXT, "server.listen"), Some(2));
        assert_eq!(line_of(TEXT, "destinations[1].name"), Some(8));
        assert_eq!(line_of(TEXT, "destinations[1].retry.initial"), Some(9));
        // A key that is not there: the nearest part that is.
        assert_eq!(line_of(TEXT, "destinations[1].bogus"), Some(7));
        assert_eq!(line_of(TEXT, "nothing"), None);
        assert_eq!(line_of("not = = toml", "server"), None);
    }
}
