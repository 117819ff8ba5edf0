//! The events functions receive, in the JSON shapes AWS Lambda delivers them (DynamoDB Streams
//! records, S3 event notifications, batch responses), so a function written against these types
//! runs unchanged under the local host and on Lambda.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::table::Item;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// One record of a table's change stream (a DynamoDB Streams record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableChange {
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: ChangeKind,
    pub event_version: String,
    pub event_source: String,
    pub aws_region: String,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: String,
    pub dynamodb: ChangeData,
    /// Set on deletions made by TTL expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeData {
    /// Epoch seconds.
    pub approximate_creation_date_time: f64,
    pub keys: Item,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<Item>,
    pub sequence_number: String,
    pub size_bytes: u64,
    pub stream_view_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    pub principal_id: String,
}

impl UserIdentity {
    /// The identity DynamoDB puts on deletions made by its TTL process.
    pub fn ttl_service() -> Self {
        Self { kind: "Service".into(), principal_id: "dynamodb.amazonaws.com".into() }
    }
}

impl TableChange {
    /// True when the item was removed because its TTL passed.
    pub fn is_ttl_deletion(&self) -> bool {
        self.event_name == ChangeKind::Remove
            && self.user_identity.as_ref() == Some(&UserIdentity::ttl_service())
    }

    /// The image after the change, or before it for a removal.
    pub fn image(&self) -> Option<&Item> {
        self.dynamodb.new_image.as_ref().or(self.dynamodb.old_image.as_ref())
    }
}

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
    pub s3: ObjectEventEntity,
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
