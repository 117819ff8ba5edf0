//! The events functions receive, in the JSON shapes AWS Lambda delivers them (DynamoDB Streams
//! records, S3 event notifications, batch responses, API Gateway's authorizer calls), so a
//! function written against these types runs unchanged under the local host and on Lambda. A table change is the table's own record
//! (`table::change`, written by its adapter in the same transaction as the item); it is offered
//! here beside the others.

use std::collections::BTreeMap;

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

/// What an API Gateway Lambda authorizer receives: the caller's token (`TOKEN`), or the parts of
/// the request its identity sources name (`REQUEST`), with the ARN of the method called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE", rename_all_fields = "camelCase")]
pub enum AuthorizerEvent {
    Token { authorization_token: String, method_arn: String },
    Request(Box<RequestAuthorizerEvent>),
}

impl AuthorizerEvent {
    /// `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`.
    pub fn method_arn(&self) -> &str {
        match self {
            Self::Token { method_arn, .. } => method_arn,
            Self::Request(request) => &request.method_arn,
        }
    }
}

/// A `REQUEST` authorizer's event: the request's headers, query and path parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthorizerEvent {
    pub method_arn: String,
    /// The route as declared (`/v1/todos/{id}`).
    pub resource: String,
    pub path: String,
    pub http_method: String,
    pub headers: BTreeMap<String, String>,
    pub query_string_parameters: BTreeMap<String, String>,
    pub path_parameters: BTreeMap<String, String>,
    pub request_context: AuthorizerRequestContext,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerRequestContext {
    pub account_id: String,
    pub api_id: String,
    pub stage: String,
    pub request_id: String,
    pub resource_path: String,
    pub http_method: String,
    pub path: String,
    pub identity: AuthorizerIdentity,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerIdentity {
    pub source_ip: String,
}

/// A Lambda authorizer's answer: who the caller is, the IAM policy that says which methods they
/// may invoke (evaluated for this call and, while it is cached, for later ones), and values for
/// the function (`requestContext.authorizer`). To refuse a token, return [`Unauthorized`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: serde_json::Value,
    /// Strings, numbers and booleans only, as on API Gateway.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, serde_json::Value>,
}

impl AuthorizerResponse {
    /// Allows `principal_id` to invoke the methods `resource` matches (an ARN pattern, `*` for any).
    pub fn allow(principal_id: impl Into<String>, resource: &str) -> Self {
        Self::with_effect(principal_id, "Allow", resource)
    }

    /// Denies `principal_id` the methods `resource` matches.
    pub fn deny(principal_id: impl Into<String>, resource: &str) -> Self {
        Self::with_effect(principal_id, "Deny", resource)
    }

    fn with_effect(principal_id: impl Into<String>, effect: &str, resource: &str) -> Self {
        Self {
            principal_id: principal_id.into(),
            policy_document: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{ "Action": "execute-api:Invoke", "Effect": effect, "Resource": resource }],
            }),
            context: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }
}

/// The error an authorizer returns for a token it does not accept (Lambda's `"Unauthorized"`):
/// the caller gets 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;
