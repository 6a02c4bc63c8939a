//! A regulation: what `POST /admin/regulations` and `switchyard regulate` ask
//! for ([`Request`]), and the record the store keeps of it ([`Regulation`]).
//!
//! Where it sits: the admin API deserializes a [`Request`]; [`super::Privacy`]
//! checks it here into a [`Regulation`] (once: the record is written once) and
//! lists records as [`Summary`] rows. The record holds each subject as a keyed
//! hash, never the id: it is the audit log, kept as proof after the user's
//! data is gone.

use serde::{Deserialize, Serialize};

use super::suppress::{SubjectKey, SubjectKind};
use crate::store::Millis;

/// Most subjects in one regulation: a longer list is sent as several (each
/// record stays well under a NATS message).
pub const MAX_SUBJECTS: usize = 10_000;

/// Longest subject id accepted, so that a regulation of 10,000 ids stays
/// bounded (2.6 MB); real ids (emails, UUIDs) are far shorter.
pub const MAX_ID_BYTES: usize = 256;

/// What a regulation asks for (Segment's regulation types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Stop collecting: the subjects' events are accepted and dropped at ingest.
    Suppress,
    /// Collect again what a `SUPPRESS` stopped.
    Unsuppress,
    /// Delete what is stored of the subjects, and ask destinations to.
    Delete,
    /// Both `SUPPRESS` and `DELETE`.
    SuppressWithDelete,
}

impl Kind {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Suppress => "SUPPRESS",
            Kind::Unsuppress => "UNSUPPRESS",
            Kind::Delete => "DELETE",
            Kind::SuppressWithDelete => "SUPPRESS_WITH_DELETE",
        }
    }
}

/// The body of `POST /admin/regulations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `SUPPRESS`, `UNSUPPRESS`, `DELETE` or `SUPPRESS_WITH_DELETE`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The users it is about, by `userId` and by `anonymousId`.
    pub subjects: Subjects,
    /// The sources it applies to, by name; absent: every source, present and
    /// future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

/// The users of a [`Request`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    /// Users by `userId`.
    #[serde(default, rename = "userId", skip_serializing_if = "Vec::is_empty")]
    pub user_id: Vec<String>,
    /// Users by `anonymousId`.
    #[serde(default, rename = "anonymousId", skip_serializing_if = "Vec::is_empty")]
    pub anonymous_id: Vec<String>,
}

/// Where a regulation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Recorded; not yet carried out everywhere.
    Pending,
    /// Carried out: a suppression is in force on every host that follows the
    /// store (within a second on NATS), a lifted one no longer is.
    Done,
    /// It could not be carried out (see `reason`).
    Failed,
}

impl State {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
}

/// The record the store keeps of a regulation: the audit log. Read without
/// `deny_unknown_fields`: a record a newer version wrote, with a field more,
/// still reads on an older host during a rolling upgrade.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Regulation {
    /// `reg_` and the time it was asked (ms, 13 digits) and 8 random hex
    /// digits: ids sort in the order regulations apply.
    pub id: String,
    /// What it asks for.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The sources it applies to; `null`: every source.
    pub sources: Option<Vec<String>>,
    /// Each subject as `userId:<hash>` or `anonymousId:<hash>`: 32 hex digits
    /// of the keyed hash (`privacy/suppress.rs`), never the id.
    pub subjects: Vec<String>,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// Who asked: the admin API with its token, or the command line.
    pub requested_by: String,
    /// Where it stands.
    pub state: State,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was carried out (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

/// Whether `id` has the form of a regulation's id (`reg_`, 13 digits, `_`, 8
/// hex digits): anything else names none, and never reaches the store.
pub fn is_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("reg_") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 22
        && b[..13].iter().all(u8::is_ascii_digit)
        && b[13] == b'_'
        && b[14..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// One row of `GET /admin/regulations` and the status page: the record
/// without its subjects' hashes (`GET /admin/regulations/{id}` has them).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Its id.
    pub id: String,
    /// What it asked for.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The sources; `null`: every source.
    pub sources: Option<Vec<String>>,
    /// How many subjects it names.
    pub subjects: usize,
    /// When it was asked.
    pub requested_at: String,
    /// Who asked.
    pub requested_by: String,
    /// Where it stands.
    pub state: State,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was carried out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

impl Summary {
    /// The row of `r`.
    pub fn of(r: &Regulation) -> Summary {
        Summary {
            id: r.id.clone(),
            kind: r.kind,
            sources: r.sources.clone(),
            subjects: r.subjects.len(),
            requested_at: r.requested_at.clone(),
            requested_by: r.requested_by.clone(),
            state: r.state,
            reason: r.reason.clone(),
            done_at: r.done_at.clone(),
        }
    }
}

impl Regulation {
    /// The record of `request`, asked at `now` by `by`, its subjects hashed
    /// with `key`; or why it is refused. `sources` are the configured ones.
    pub fn new(
        request: &Request,
        key: &SubjectKey,
        sources: &[String],
        by: &str,
        now: Millis,
    ) -> Result<Regulation, String> {
        let subjects = &request.subjects;
        let n = subjects.user_id.len() + subjects.anonymous_id.len();
        if n == 0 {
            return Err("`subjects` names no one: give `userId` and/or `anonymousId` lists".into());
        }
        if n > MAX_SUBJECTS {
            return Err(format!(
                "{n} subjects: at most {MAX_SUBJECTS} per regulation (send several)"
            ));
        }
        let mut sources_named = request.sources.clone();
        if let Some(list) = &mut sources_named {
            list.sort();
            list.dedup();
            if list.is_empty() {
                return Err("`sources` is empty: leave it out to mean every source".into());
            }
            if let Some(unknown) = list.iter().find(|s| !sources.contains(s)) {
                return Err(format!("no source named `{unknown}`"));
            }
        }
        let mut hashed = Vec::with_capacity(n);
        for (kind, ids) in [
            (SubjectKind::UserId, &subjects.user_id),
            (SubjectKind::AnonymousId, &subjects.anonymous_id),
        ] {
            for id in ids {
                if id.is_empty() || id.len() > MAX_ID_BYTES {
                    return Err(format!(
                        "a {} of {} bytes: ids are 1 to {MAX_ID_BYTES} bytes",
                        kind.field(),
                        id.len()
                    ));
                }
                hashed.push(format!("{}:{:032x}", kind.field(), key.hash(kind, id)));
            }
        }
        hashed.sort();
        hashed.dedup();
        let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
        Ok(Regulation {
            id: format!("reg_{now:013}_{:08x}", rand::random::<u32>()),
            kind: request.kind,
            sources: sources_named,
            subjects: hashed,
            requested_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            requested_by: by.to_string(),
            state: State::Pending,
            reason: None,
            done_at: None,
        })
    }

    /// The subjects' full keyed hashes; a subject that does not read as
    /// `kind:hash` is an error (the record was not ours).
    pub fn hashes(&self) -> Result<Vec<u128>, String> {
        self.subjects
            .iter()
            .map(|s| {
                let (kind, hex) = s.split_once(':').ok_or("no `:`")?;
                SubjectKind::of_field(kind).ok_or("an unknown kind")?;
                u128::from_str_radix(hex, 16).map_err(|_| "not hex")
            })
            .collect::<Result<_, &str>>()
            .map_err(|e| format!("regulation {}: a subject is not kind:hash ({e})", self.id))
    }

    /// The subjects' hashes as the suppression sets hold them.
    pub fn short_hashes(&self) -> Result<Vec<u64>, String> {
        Ok(self
            .hashes()?
            .into_iter()
            .map(super::suppress::short)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: Kind, users: &[&str], sources: Option<&[&str]>) -> Request {
        Request {
            kind,
            subjects: Subjects {
                user_id: users.iter().map(|s| s.to_string()).collect(),
                anonymous_id: vec![],
            },
            sources: sources.map(|s| s.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_record_holds_hashes_only_and_refuses_what_it_cannot_do() {
        let key = SubjectKey::new([3; 16]);
        let sources = vec!["web".to_string()];
        let r = Regulation::new(
            &request(
                Kind::Suppress,
                &["alice@example.com", "alice@example.com"],
                None,
            ),
            &key,
            &sources,
            "test",
            1_700_000_000_000,
        )
        .unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("alice"), "{text}");
        assert_eq!(r.subjects.len(), 1, "the same subject twice is one");
        assert!(r.id.starts_with("reg_1700000000000_"));
        assert!(is_id(&r.id), "{}", r.id);
        for not in [
            "reg_>",
            "reg_1700000000000_0000000g",
            "r.reg_1700000000000_00000000",
            "",
        ] {
            assert!(!is_id(not), "{not}");
        }
        assert_eq!(r.short_hashes().unwrap().len(), 1);

        let no = |req: Request| Regulation::new(&req, &key, &sources, "t", 0).unwrap_err();
        assert!(no(request(Kind::Suppress, &[], None)).contains("names no one"));
        assert!(no(request(Kind::Suppress, &["a"], Some(&["ios"]))).contains("`ios`"));
        assert!(no(request(Kind::Suppress, &["a"], Some(&[]))).contains("every source"));
        let many: Vec<String> = (0..=MAX_SUBJECTS).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(no(request(Kind::Suppress, &many, None)).contains("at most"));
    }

    #[test]
    fn names_shown_are_the_names_serialized() {
        for state in [State::Pending, State::Done, State::Failed] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for kind in [
            Kind::Suppress,
            Kind::Unsuppress,
            Kind::Delete,
            Kind::SuppressWithDelete,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn a_request_with_an_unknown_field_is_refused() {
        let e = serde_json::from_str::<Request>(
            r#"{"type":"SUPPRESS","subjects":{"userId":["a"]},"source":["web"]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `source`"), "{e}");
        let e = serde_json::from_str::<Request>(r#"{"type":"FORGET","subjects":{}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
