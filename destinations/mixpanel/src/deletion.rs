//! Deleting users at Mixpanel (a privacy regulation's `DELETE`), through its
//! GDPR API v3: `POST {gdpr_endpoint}/api/app/data-deletions/v3.0/?token={token}`
//! with `{"distinct_ids": [...], "compliance_type": "GDPR"}`, authorised by a
//! GDPR OAuth token (`Authorization: Bearer`), up to 2,000 ids a request.
//!
//! The ids are the `distinct_id`s this destination sends: a `userId` as it is,
//! an `anonymousId` as `$device:<id>`. Mixpanel answers with a task id and
//! deletes within weeks; the request taken is the outcome (`ok`). A 429 (the
//! GDPR API's rate limit) or a 5xx is tried again by the host.

use serde_json::json;
use switchyard_destination_kit::{self as kit, Outcome, Subject};

use super::{Mixpanel, Settings, NAME};

/// Most distinct ids in one deletion request.
const MAX_IDS: usize = 2000;

pub(super) fn default_gdpr_endpoint() -> String {
    "https://mixpanel.com".into()
}

/// The `distinct_id` this destination gives `subject`.
fn distinct_id(subject: &Subject) -> String {
    match subject {
        Subject::UserId(id) => id.clone(),
        Subject::AnonymousId(id) => format!("$device:{id}"),
    }
}

impl kit::Deletion for Mixpanel {
    fn delete_subjects(settings: Settings, subjects: Vec<Subject>) -> Vec<Outcome> {
        let (Some(token), Some(oauth)) = (&settings.token, &settings.gdpr_api_token) else {
            let why = format!(
                "{NAME}: deleting users needs `token` (the project token) and \
                 `gdpr_api_token` (a GDPR OAuth token) in the settings"
            );
            return vec![Err(kit::reject(why)); subjects.len()];
        };
        let url = format!(
            "{}/api/app/data-deletions/v3.0/?token={}",
            settings.gdpr_endpoint,
            kit::url_encode(token)
        );
        let headers = [("authorization".to_string(), format!("Bearer {oauth}"))];
        let mut outcomes = Vec::with_capacity(subjects.len());
        for part in subjects.chunks(MAX_IDS) {
            let ids: Vec<String> = part.iter().map(distinct_id).collect();
            let body = json!({"distinct_ids": ids, "compliance_type": "GDPR"});
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

    fn settings(extra: &str) -> Settings {
        Settings::parse(&format!(r#"{{"api_secret":"s","token":"tok"{extra}}}"#)).unwrap()
    }

    #[test]
    fn users_are_deleted_through_the_gdpr_api_by_their_distinct_ids() {
        mock::respond(|_| mock::answer(200, &[], r#"{"status":"ok","results":{"task_id":"t1"}}"#));
        let out = <Mixpanel as kit::Deletion>::delete_subjects(
            settings(r#","gdpr_api_token":"g""#),
            vec![
                Subject::UserId("alice".into()),
                Subject::AnonymousId("a-1".into()),
            ],
        );
        assert!(out.len() == 2 && out.iter().all(Result::is_ok), "{out:?}");
        let sent = mock::requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].url,
            "https://mixpanel.com/api/app/data-deletions/v3.0/?token=tok"
        );
        assert!(sent[0]
            .headers
            .contains(&("authorization".into(), "Bearer g".into())));
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(
            body,
            json!({"distinct_ids": ["alice", "$device:a-1"], "compliance_type": "GDPR"})
        );
    }

    #[test]
    fn a_rate_limit_is_retried_and_a_missing_token_refused() {
        mock::respond(|_| mock::answer(429, &[("retry-after", "3")], "{}"));
        let out = <Mixpanel as kit::Deletion>::delete_subjects(
            settings(r#","gdpr_api_token":"g""#),
            vec![Subject::UserId("alice".into())],
        );
        assert!(
            matches!(&out[0], Err(kit::Failure::Retry(h)) if h.after_ms == Some(3000)),
            "{out:?}"
        );
        let out = <Mixpanel as kit::Deletion>::delete_subjects(
            settings(""),
            vec![Subject::UserId("alice".into())],
        );
        assert!(
            matches!(&out[0], Err(kit::Failure::Reject(why)) if why.contains("gdpr_api_token"))
        );
    }
}
