//! Property tests (proptest) of everything that reads a collector's bytes: the subject parser,
//! the report decoder and the outage and maintenance decoder, which HTTP ingest runs on its
//! request bodies too. Whatever comes in, they return; they never panic, and every rejection
//! names a field and gives a reason. Each property runs [`CASES`] cases.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sitrep_domain::notice;
use sitrep_domain::wire::{self, FieldError, MessageKind, MAX_PAYLOAD_BYTES};
use time::OffsetDateTime;

/// Cases per property: 100,000 for the structured JSON, which is where the decoder's logic is.
const CASES: u32 = 100_000;

/// The field names the decoders look at, so generated objects hit real code paths, plus a few
/// they must ignore.
const FIELDS: &[&str] = &[
    "system",
    "component",
    "status",
    "observed_at",
    "message",
    "metrics",
    "labels",
    "ttl_seconds",
    "reports",
    "id",
    "state",
    "severity",
    "title",
    "body",
    "components",
    "starts_at",
    "ends_at",
    "started_at",
    "resolved_at",
    "cancelled",
    "unknown",
    "x",
];

/// Values of the kinds collectors actually send wrong: the right type with odd contents, the
/// wrong type, extremes, and strings that look like the real thing.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        prop_oneof![
            Just("ok"),
            Just("degraded"),
            Just("failed"),
            Just("unknown"),
            Just("maintenance"),
            Just("derecho"),
            Just("casper"),
            Just("node/n1"),
            Just("fs/glade"),
            Just(""),
            Just("2026-11-22T10:00:00Z"),
            Just("2026-11-22T10:00:00+05:30"),
            Just("9999-12-31T23:59:59-01:00"),
            Just("0000-01-01T00:00:00Z"),
            Just("2126-01-01T00:00:00Z"),
            Just("investigating"),
            Just("resolved"),
            Just("critical"),
            Just("{{system}}<script>"),
        ]
        .prop_map(|s| json!(s)),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON, nested a few levels, with objects keyed mostly by the real field names.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array), object(inner),]
    })
}

fn object(inner: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => prop::sample::select(FIELDS).prop_map(str::to_owned), 1 => "\\PC{0,12}"];
    prop::collection::vec((key, inner), 0..10).prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
}

/// A plausible report, batch, outage or maintenance message with some fields replaced by
/// arbitrary values: mostly valid-looking, so the checks past the first few run too.
fn near_valid() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        Just(
            json!({"system": "derecho", "component": "node/n1", "status": "ok", "metrics": {"load": 1.5}, "labels": {"rack": "r1"}, "ttl_seconds": 60})
        ),
        Just(
            json!({"system": "derecho", "status": "ok", "reports": [{"component": "a", "status": "failed"}, {"component": "b", "status": "ok", "observed_at": "2026-11-22T10:00:00Z"}]})
        ),
        Just(
            json!({"system": "derecho", "id": "o-1", "state": "investigating", "severity": "major", "title": "Down", "components": ["node/*"]})
        ),
        Just(
            json!({"system": "derecho", "id": "m-1", "title": "Patch", "starts_at": "2026-11-22T10:00:00Z", "ends_at": "2026-11-22T12:00:00Z", "components": ["fs/*"]})
        ),
    ];
    (base, prop::collection::vec((prop::sample::select(FIELDS), value()), 0..4)).prop_map(|(mut base, changes)| {
        let obj = base.as_object_mut().unwrap();
        for (field, v) in changes {
            obj.insert(field.to_owned(), v);
        }
        base
    })
}

/// Subjects near the real ones (a known start, then odd tokens) and arbitrary text.
fn subject() -> impl Strategy<Value = String> {
    let start = prop::sample::select(vec![
        "",
        "sitrep",
        "sitrep.",
        "sitrep.report.",
        "sitrep.outage.",
        "sitrep.maintenance.",
        "sitrep.alert.",
        "other.report.",
    ]);
    prop_oneof![(start, "[.a-zA-Z0-9*>_-]{0,12}").prop_map(|(a, b)| format!("{a}{b}")), "\\PC{0,40}",]
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-11-22 10:00 UTC)
}

/// A rejection must say which field and why.
fn assert_names_a_field(e: &FieldError, payload: &[u8]) {
    assert!(!e.field.trim().is_empty(), "a rejection without a field, for {:?}", String::from_utf8_lossy(payload));
    assert!(!e.reason.trim().is_empty(), "a rejection without a reason, for {:?}", String::from_utf8_lossy(payload));
}

/// Runs every decoder on `payload` for the system `derecho`, checking what comes back.
fn check_every_decoder(payload: &[u8]) {
    match wire::decode("derecho", payload, now()) {
        Ok(decoded) => {
            assert!(
                !decoded.reports.is_empty() || !decoded.rejected.is_empty(),
                "a message decoded into nothing at all"
            );
            for r in &decoded.reports {
                assert_eq!(r.system.as_str(), "derecho", "a report for another system than the subject's");
                assert!(r.metrics.values().all(|m| m.is_finite()), "a non-finite metric was accepted");
            }
            for e in &decoded.rejected {
                assert_names_a_field(e, payload);
            }
        }
        Err(e) => assert_names_a_field(&e, payload),
    }
    if let Err(e) = wire::peek_system(payload) {
        assert_names_a_field(&e, payload);
    }
    for kind in [MessageKind::Outage, MessageKind::Maintenance] {
        if let Err(e) = notice::decode(kind, "derecho", payload, now()) {
            assert_names_a_field(&e, payload);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_and_every_rejection_names_a_field(v in prop_oneof![value(), near_valid()]) {
        check_every_decoder(&serde_json::to_vec(&v).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 4, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_and_mangled_json_never_panic(
        v in near_valid(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        raw in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check_every_decoder(&raw);
        let mut bytes = serde_json::to_vec(&v).unwrap();
        for (at, b) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        check_every_decoder(&bytes);
    }

    #[test]
    fn arbitrary_subjects_never_panic_and_are_refused_with_the_subject_named(subject in subject()) {
        match wire::parse_subject("sitrep", &subject) {
            Ok((kind, system)) => {
                let rebuilt = format!("sitrep.{}.{system}", kind.token());
                prop_assert_eq!(subject.as_str(), rebuilt.as_str());
            }
            Err(e) => prop_assert_eq!(e.field, "subject"),
        }
    }
}

#[test]
fn the_payload_limit_is_a_rejection_not_an_allocation() {
    let mut big = br#"{"system":"derecho","component":"a","status":"ok","message":""#.to_vec();
    big.resize(MAX_PAYLOAD_BYTES + 1, b'x');
    big.extend_from_slice(br#""}"#);
    let e = wire::decode("derecho", &big, now()).unwrap_err();
    assert_eq!(e.field, "payload");
}
