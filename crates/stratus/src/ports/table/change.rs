//! The record of a change to an item, in the shape of a DynamoDB Streams record: what a table's
//! adapter writes to the change stream with the item, and what table-change functions receive.

use serde::{Deserialize, Serialize};

use super::Item;

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
    /// Epoch seconds, a whole number as DynamoDB Streams sends it (records written before it was
    /// one, as `1764633600.0`, still read).
    #[serde(deserialize_with = "whole_seconds")]
    pub approximate_creation_date_time: i64,
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

/// Whole seconds from a JSON number, integral or not.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return Err(serde::de::Error::custom("ApproximateCreationDateTime is not a time"));
    }
    #[allow(clippy::cast_possible_truncation, reason = "finite and within range, checked above")]
    Ok(seconds.trunc() as i64)
}
