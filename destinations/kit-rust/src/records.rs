//! Per-record outcomes: the events of a batch become vendor records, the records
//! go out in one request, and the vendor's complaints about single records
//! ("records 3 and 7 are invalid") come back to the events they were made from.
//!
//! The mapping is where hand-written code goes wrong: events rejected locally
//! are not sent, so a vendor's index 3 is not the batch's event 3. These two
//! functions keep that bookkeeping in one place; docs/authoring.md ("Per-record
//! outcomes") shows a complete destination written on them.

use crate::{classify_error, classify_response, http, Event, Failure, Outcome, Response};

/// Deliver `events` as one request of records, one outcome per event:
/// - `build` turns an event into its record, or into a local failure (that event
///   is not sent; usually `kit::reject("...")`);
/// - `send` sends the records that were built, in order, as one request (it is
///   not called when none was);
/// - `failed` reads the vendor's per-record errors from the answer, as
///   `(index among the records sent, failure)`, or `None` when the answer has none.
///
/// Listed records get their failure and the others are delivered. An answer
/// without per-record detail (`None`, or an empty list on a non-2xx status) is
/// classified the standard way ([`classify_response`]) for every record sent; a
/// transport error is classified by [`classify_error`]. An index beyond the
/// records sent is ignored (so a non-2xx answer naming only such indices is
/// classified whole); a record listed twice gets the last failure given.
pub fn deliver_records<T>(
    vendor: &str,
    events: &[Event],
    mut build: impl FnMut(&Event) -> Result<T, Failure>,
    send: impl FnOnce(&[T]) -> Result<Response, http::Error>,
    failed: impl FnOnce(&Response) -> Option<Vec<(usize, Failure)>>,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = vec![Ok(()); events.len()];
    let mut records = Vec::with_capacity(events.len());
    let mut owners = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        match build(event) {
            Ok(record) => {
                records.push(record);
                owners.push(i);
            }
            Err(failure) => outcomes[i] = Err(failure),
        }
    }
    if records.is_empty() {
        return outcomes;
    }
    let answer = send(&records);
    for (owner, outcome) in
        owners
            .into_iter()
            .zip(record_outcomes(vendor, records.len(), answer, failed))
    {
        outcomes[owner] = outcome;
    }
    outcomes
}

/// The outcomes of the `n` records of one request, from its answer and the
/// vendor's per-record errors read by `failed` (see [`deliver_records`], which
/// calls it; use it directly when the records of a batch go out in several
/// requests).
pub fn record_outcomes(
    vendor: &str,
    n: usize,
    answer: Result<Response, http::Error>,
    failed: impl FnOnce(&Response) -> Option<Vec<(usize, Failure)>>,
) -> Vec<Outcome> {
    let resp = match answer {
        Ok(resp) => resp,
        Err(error) => return vec![Err(classify_error(&error)); n],
    };
    // Indices beyond the records sent name nothing: they are left out first, so
    // a non-2xx answer that names none of ours is classified whole.
    let listed = failed(&resp).map(|list| {
        list.into_iter()
            .filter(|(index, _)| *index < n)
            .collect::<Vec<_>>()
    });
    match listed {
        Some(list) if !list.is_empty() || resp.is_success() => {
            let mut outcomes: Vec<Outcome> = vec![Ok(()); n];
            for (index, failure) in list {
                outcomes[index] = Err(failure);
            }
            outcomes
        }
        _ => vec![classify_response(vendor, &resp); n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{reject, EventType};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                message_id: format!("m{i}"),
                event_type: EventType::Track,
                json: format!(r#"{{"type":"track","event":"E{i}","messageId":"m{i}"}}"#),
            })
            .collect()
    }

    fn answer(status: u16, body: &str) -> Result<Response, http::Error> {
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn show(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                Ok(()) => "ok".to_string(),
                Err(Failure::Reject(why)) => format!("reject: {why}"),
                Err(Failure::Retry(h)) => format!("retry: {}", h.reason),
            })
            .collect()
    }

    #[test]
    fn vendor_indices_skip_the_events_rejected_locally() {
        // Events 1 and 4 are refused before sending: the vendor sees 4 records, and
        // its index 2 is event 3.
        let mut sent = 0;
        let outcomes = deliver_records(
            "acme",
            &events(6),
            |e| match e.message_id.as_str() {
                "m1" | "m4" => Err(reject("no user")),
                id => Ok(id.to_string()),
            },
            |records: &[String]| {
                sent = records.len();
                assert_eq!(records, ["m0", "m2", "m3", "m5"]);
                answer(400, r#"{"failed":[2]}"#)
            },
            |_| Some(vec![(2, reject("bad field")), (9, reject("out of range"))]),
        );
        assert_eq!(sent, 4);
        assert_eq!(
            show(&outcomes),
            [
                "ok",
                "reject: no user",
                "ok",
                "reject: bad field",
                "reject: no user",
                "ok"
            ]
        );
    }

    #[test]
    fn an_answer_without_detail_is_classified_for_every_record_sent() {
        let outcomes = deliver_records(
            "acme",
            &events(3),
            |e| {
                if e.message_id == "m0" {
                    Err(reject("local"))
                } else {
                    Ok(())
                }
            },
            |_| answer(503, "busy"),
            |_| None,
        );
        assert_eq!(
            show(&outcomes),
            [
                "reject: local",
                "retry: acme answered 503: busy",
                "retry: acme answered 503: busy"
            ]
        );
        // A 400 whose body names no record of ours rejects the whole request.
        let outcomes = record_outcomes("acme", 2, answer(400, "nope"), |_| Some(Vec::new()));
        assert_eq!(show(&outcomes), ["reject: acme answered 400: nope"; 2]);
        let outcomes = record_outcomes("acme", 2, answer(400, "nope"), |_| {
            Some(vec![(7, reject("not ours"))])
        });
        assert_eq!(show(&outcomes), ["reject: acme answered 400: nope"; 2]);
        // A 200 that lists a failure delivers the rest.
        let outcomes = record_outcomes("acme", 2, answer(200, ""), |_| {
            Some(vec![(1, reject("dropped"))])
        });
        assert_eq!(show(&outcomes), ["ok", "reject: dropped"]);
        let outcomes = record_outcomes("acme", 2, Err(http::Error::Timeout), |_| None);
        assert_eq!(show(&outcomes), ["retry: request timed out"; 2]);
    }

    #[test]
    fn nothing_is_sent_when_every_event_failed_locally() {
        let outcomes = deliver_records(
            "acme",
            &events(2),
            |_| Err::<(), _>(reject("no")),
            |_| panic!("nothing to send"),
            |_| None,
        );
        assert_eq!(show(&outcomes), ["reject: no"; 2]);
    }
}
