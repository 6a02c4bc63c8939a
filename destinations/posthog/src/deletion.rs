//! Deleting users at PostHog (a privacy regulation's `DELETE`), through its
//! persons API: `POST {api_host}/api/projects/{project_id}/persons/bulk_delete/`
//! with `{"distinct_ids": [...], "delete_events": true}`, authorised by a
//! personal API key (`Authorization: Bearer`), up to 1,000 ids a request.
//!
//! The ids are the `distinct_id`s this destination sends: the `userId`, or the
//! `anonymousId`. The persons and their events are deleted; the request taken
//! is the outcome (`ok`). A 429 or a 5xx is tried again by the host.

use serde_json::json;
use switchyard_destination_kit::{self as kit, Outcome, Subject};

use super::{PostHog, Settings, NAME};

/// Most distinct ids in one request.
const MAX_IDS: usize = 1000;

pub(super) fn default_api_host() -> String {
    "https://us.posthog.com".into()
}

impl kit::Deletion for PostHog {
    fn delete_subjects(settings: Settings, subjects: Vec<Subject>) -> Vec<Outcome> {
        let (Some(key), Some(project)) = (&settings.personal_api_key, &settings.project_id) else {
            let why = format!(
                "{NAME}: deleting users needs `personal_api_key` and `project_id` in the settings"
            );
            return vec![Err(kit::reject(why)); subjects.len()];
        };
        let url = format!(
            "{}/api/projects/{}/persons/bulk_delete/",
            settings.api_host,
            kit::url_encode(project)
        );
        let headers = [("authorization".to_string(), format!("Bearer {key}"))];
        let mut outcomes = Vec::with_capacity(subjects.len());
        for part in subjects.chunks(MAX_IDS) {
            let ids: Vec<&str> = part
                .iter()
                .map(|s| match s {
                    Subject::UserId(id) | Subject::AnonymousId(id) => id.as_str(),
                })
                .collect();
            let body = json!({"distinct_ids": ids, "delete_events": true});
            let outcome = kit::classify_as(NAME, kit::post_json(&url, &headers, &body));
            outcomes.extend(std::iter::repeat_n(outcome, part.len()));
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::mock;

    #[test]
    fn persons_and_their_events_are_deleted_by_distinct_id() {
        mock::respond(|_| mock::answer(200, &[], "{}"));
        let settings = Settings::parse(
            r#"{"api_key":"phc_1","personal_api_key":"phx_2","project_id":42,
                "api_host":"https://eu.posthog.com/"}"#,
        )
        .unwrap();
        let out = <PostHog as kit::Deletion>::delete_subjects(
            settings,
            vec![
                Subject::UserId("u1".into()),
                Subject::AnonymousId("a1".into()),
            ],
        );
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        let sent = mock::requests();
        assert_eq!(
            sent[0].url,
            "https://eu.posthog.com/api/projects/42/persons/bulk_delete/"
        );
        assert!(sent[0]
            .headers
            .contains(&("authorization".into(), "Bearer phx_2".into())));
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(
            body,
            json!({"distinct_ids": ["u1", "a1"], "delete_events": true})
        );
    }

    #[test]
    fn without_a_personal_key_a_deletion_is_refused_with_what_to_set() {
        let settings = Settings::parse(r#"{"api_key":"phc_1"}"#).unwrap();
        let out = <PostHog as kit::Deletion>::delete_subjects(
            settings,
            vec![Subject::UserId("u1".into())],
        );
        assert!(matches!(&out[0], Err(kit::Failure::Reject(w)) if w.contains("personal_api_key")));
    }
}
