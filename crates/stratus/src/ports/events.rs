//! The events functions receive, in the JSON shapes AWS Lambda delivers them (DynamoDB Streams
//! records, S3 event notifications, batch responses), so a function written against these types
//! runs unchanged under the local host and on Lambda. A table change is the table's own record
//! (`table::change`, written by its adapter in the same transaction as the item); it is offered
//! here beside the others.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

pub use crate::ports::table::change::{ChangeData, ChangeKind, TableChange, UserIdentity};

/// One S3 event notification record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectEvent {
    pub event_version: String,
    pub event_source: String,
    pub aws_region: String,
    /// RFC 3339 time of the event.
    pub event_time: String,
    /// `ObjectCreated:Put`, `ObjectCreated:Copy`, `ObjectCreated:CompleteMultipartUpload`,
    /// `ObjectRemoved:Delete`.
    pub event_name: String,
    /// Who made the request. Locally, the stage's own principal (`stratus`). Records written
    /// before these fields existed read with empty values.
    #[serde(default)]
    pub user_identity: S3Principal,
    #[serde(default)]
    pub request_parameters: RequestParameters,
    #[serde(default)]
    pub response_elements: ResponseElements,
    pub s3: ObjectEventEntity,
}

/// An AWS principal as S3 names it in notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Principal {
    pub principal_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestParameters {
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
}

/// The ids S3 gave the request, for support cases; locally, one id per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseElements {
    #[serde(rename = "x-amz-request-id")]
    pub request_id: String,
    #[serde(rename = "x-amz-id-2")]
    pub host_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectEventEntity {
    pub s3_schema_version: String,
    pub configuration_id: String,
    pub bucket: BucketRef,
    pub object: ObjectRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRef {
    pub name: String,
    #[serde(default)]
    pub owner_identity: S3Principal,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// URL-encoded, as S3 sends it; [`ObjectEvent::key`] decodes it.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(rename = "eTag", default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// Set in versioned buckets only; Stratus's buckets are not versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Orders events for the same key.
    pub sequencer: String,
}

impl ObjectEvent {
    pub fn is_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }

    /// The object key, decoded.
    pub fn key(&self) -> String {
        decode_event_key(&self.s3.object.key)
    }
}

/// Characters S3 leaves as they are in event keys.
const EVENT_KEY_KEEP: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b'*');

/// Encodes a key the way S3 event notifications do (spaces become `+`).
pub fn encode_event_key(key: &str) -> String {
    utf8_percent_encode(key, EVENT_KEY_KEEP).to_string().replace("%20", "+")
}

pub fn decode_event_key(encoded: &str) -> String {
    percent_decode_str(&encoded.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// Lambda's partial batch response: the records that failed. Empty means the whole batch
/// succeeded; processing resumes at the lowest failed sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The record's sequence number.
    pub item_identifier: String,
}

impl BatchResponse {
    pub fn success() -> Self {
        Self::default()
    }

    /// Reports `sequence_number` (and implicitly every later record) as not processed.
    pub fn failed_from(sequence_number: impl Into<String>) -> Self {
        Self { batch_item_failures: vec![BatchItemFailure { item_identifier: sequence_number.into() }] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_round_trip_like_s3() {
        let key = "photos/summer trip/ä+b.jpg";
        let encoded = encode_event_key(key);
        assert_eq!(encoded, "photos/summer+trip/%C3%A4%2Bb.jpg");
        assert_eq!(decode_event_key(&encoded), key);
    }
}
