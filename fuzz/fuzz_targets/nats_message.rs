//! A message of the NATS events stream, as a consumer receives it: headers
//! (`Name: value` lines, as the client's parser would hand them over) and a
//! body. Reading it into a job and its routing keys never panics, and every
//! header value the store writes reads back exactly, on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::store::nats::{headers, job_of, route_keys_of, Delivery};

fuzz_target!(|data: &[u8]| {
    let (head, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut map = async_nats::HeaderMap::new();
    for line in head.lines() {
        // What the client's parser gives: a valid name, a trimmed value.
        let Some((name, value)) = line.split_once(':') else { continue };
        let Ok(name) = name.parse::<async_nats::HeaderName>() else { continue };
        map.insert(name, value.trim());
        // Written by the store, the same text comes back whole.
        let written = headers::encode(line);
        let wire = written.as_str();
        assert!(!wire.contains(['\r', '\n']), "{line:?} written as {wire:?}");
        assert_eq!(headers::decode(wire.trim()), line);
    }
    let delivered = payload.first().map_or(1, |b| i64::from(*b) - 1);
    let delivery = Delivery { sequence: 7, published: 1, delivered };
    if let Ok(job) = job_of(Some(&map), payload, delivery, 2) {
        assert!(job.first_attempt_at <= 2);
    }
    let _ = route_keys_of(Some(&map));
});
