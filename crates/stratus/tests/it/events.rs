//! The events functions receive, against JSON in the shapes AWS documents for Lambda (fixtures
//! under `tests/data/`, written from the documentation): what AWS sends reads into the types, and
//! the types write it back unchanged, so a function sees the same values on Lambda and locally.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratus::ports::events::{ChangeKind, ObjectEvent, TableChange};

/// A Lambda event: its records.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LambdaEvent<T> {
    records: Vec<T>,
}

pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

#[test]
fn a_dynamodb_streams_event_reads_and_writes_back_unchanged() {
    let published = fixture("dynamodb-stream-event.json");
    let event: LambdaEvent<TableChange> = serde_json::from_value(published.clone()).expect("reads");
    let [modified, expired] = &event.records[..] else { panic!("two records") };
    assert_eq!(modified.event_name, ChangeKind::Modify);
    assert_eq!(modified.dynamodb.approximate_creation_date_time, 1_764_633_600);
    assert_eq!(
        modified.image().and_then(|image| image.get("title")).and_then(|t| t.as_s()),
        Some("Hello again")
    );
    assert!(!modified.is_ttl_deletion());
    assert!(expired.is_ttl_deletion(), "a removal by the TTL service");
    assert_eq!(serde_json::to_value(&event).expect("writes"), published);
}

#[test]
fn a_stream_record_written_with_fractional_seconds_still_reads() {
    let mut published = fixture("dynamodb-stream-event.json");
    published["Records"][0]["dynamodb"]["ApproximateCreationDateTime"] = serde_json::json!(1_764_633_600.0);
    let event: LambdaEvent<TableChange> = serde_json::from_value(published).expect("reads");
    assert_eq!(event.records[0].dynamodb.approximate_creation_date_time, 1_764_633_600);
}

#[test]
fn an_s3_event_notification_reads_and_writes_back_unchanged() {
    let published = fixture("s3-event.json");
    let event: LambdaEvent<ObjectEvent> = serde_json::from_value(published.clone()).expect("reads");
    let [created, removed] = &event.records[..] else { panic!("two records") };
    assert!(created.is_created() && !removed.is_created());
    assert_eq!(created.key(), "photos/summer trip/café.jpg", "keys arrive URL-encoded, spaces as +");
    assert_eq!(created.s3.object.size, Some(2_481_152));
    assert_eq!(created.request_parameters.source_ip_address, "203.0.113.7");
    assert_eq!(removed.s3.object.size, None, "a deletion carries no size");
    assert_eq!(serde_json::to_value(&event).expect("writes"), published);
}

#[test]
fn an_object_event_stored_before_the_principal_fields_still_reads() {
    let mut published = fixture("s3-event.json");
    let record = published["Records"][0].as_object_mut().expect("record");
    for field in ["userIdentity", "requestParameters", "responseElements"] {
        record.remove(field);
    }
    let event: LambdaEvent<ObjectEvent> = serde_json::from_value(published).expect("reads");
    assert_eq!(event.records[0].user_identity.principal_id, "");
}
