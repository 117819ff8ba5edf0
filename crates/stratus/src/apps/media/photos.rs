//! Photo items: one per upload, in the stage's `media` table, recording where the original is
//! and what became of it (`pending`, `ready` with dimensions and thumbnails, `failed` with a
//! reason).

use std::sync::Arc;

use serde::Serialize;

use super::thumbnail::OutputFormat;
use crate::infra::clock::Clock;
use crate::item;
use crate::ports::table::decode::{self, AttributeError};
use crate::ports::table::{
    AttributeValue, Condition, Item, KeyAttribute, Table, TableError, TableSpec, UpdateAction,
};

pub const TABLE: &str = "media";

pub fn table_spec() -> TableSpec {
    TableSpec::new(TABLE, KeyAttribute::string("id"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoState {
    Pending,
    Ready,
    Failed,
}

impl PhotoState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThumbnailRef {
    pub key: String,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Photo {
    pub id: String,
    /// The original's key in the media bucket.
    pub key: String,
    pub state: PhotoState,
    pub reason: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bytes: u64,
    pub thumbnails: Vec<ThumbnailRef>,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("storage failure")]
    Table(#[from] TableError),
    #[error("a stored photo is corrupt")]
    Corrupt(#[from] AttributeError),
}

/// The photo id in an original's key (`photos/<id>.<ext>`).
pub fn id_of_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix("photos/")?;
    let id = name.split_once('.').map_or(name, |(id, _)| id);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[derive(Debug, Clone)]
pub struct PhotoStore {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl PhotoStore {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Records an upload before its bytes land, so the function always finds the item.
    pub async fn create(&self, id: &str, key: &str, uploaded_by: &str) -> Result<(), PhotoError> {
        let now = humantime::format_rfc3339_seconds(self.clock.now()).to_string();
        let item = item! {
            "id" => id, "key" => key, "state" => PhotoState::Pending.as_str(),
            "uploaded_by" => uploaded_by, "uploaded_at" => now, "bytes" => 0,
        };
        self.table.put(item, Some(Condition::not_exists("id"))).await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<Photo>, PhotoError> {
        Ok(self.table.get_shared(&item! { "id" => id }).await?.map(|item| photo(&item)).transpose()?)
    }

    /// Forgets an upload that never completed.
    pub async fn delete(&self, id: &str) -> Result<(), PhotoError> {
        self.table.delete(&item! { "id" => id }, None).await?;
        Ok(())
    }

    pub async fn set_size(&self, id: &str, bytes: u64) -> Result<(), PhotoError> {
        let update = [UpdateAction::set("bytes", bytes)];
        self.table.update(&item! { "id" => id }, &update, Some(Condition::exists("id"))).await?;
        Ok(())
    }

    /// Ready, with the upright size and the thumbnails. Writing the same result twice leaves
    /// the same item.
    pub async fn mark_ready(
        &self,
        id: &str,
        width: u32,
        height: u32,
        thumbnails: &[ThumbnailRef],
    ) -> Result<(), PhotoError> {
        let list: Vec<AttributeValue> = thumbnails
            .iter()
            .map(|t| {
                AttributeValue::M(item! {
                    "key" => t.key.as_str(), "format" => t.format.extension(),
                    "width" => t.width, "height" => t.height,
                })
            })
            .collect();
        let update = [
            UpdateAction::set("state", PhotoState::Ready.as_str()),
            UpdateAction::set("width", width),
            UpdateAction::set("height", height),
            UpdateAction::set("thumbnails", AttributeValue::L(list)),
            UpdateAction::remove("reason"),
        ];
        self.table.update(&item! { "id" => id }, &update, Some(Condition::exists("id"))).await?;
        Ok(())
    }

    /// Failed, unless it is no longer pending: thumbnails made earlier stay listed when a later
    /// re-run of the function gives up. Whether it was marked.
    pub async fn give_up(&self, id: &str, reason: &str) -> Result<bool, PhotoError> {
        let update =
            [UpdateAction::set("state", PhotoState::Failed.as_str()), UpdateAction::set("reason", reason)];
        let pending = Condition::eq("state", PhotoState::Pending.as_str());
        match self.table.update(&item! { "id" => id }, &update, Some(pending)).await {
            Ok(_) => Ok(true),
            Err(TableError::ConditionFailed) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn mark_failed(&self, id: &str, reason: &str) -> Result<(), PhotoError> {
        // Nothing of an earlier success remains listed.
        let update = [
            UpdateAction::set("state", PhotoState::Failed.as_str()),
            UpdateAction::set("reason", reason),
            UpdateAction::remove("width"),
            UpdateAction::remove("height"),
            UpdateAction::remove("thumbnails"),
        ];
        self.table.update(&item! { "id" => id }, &update, Some(Condition::exists("id"))).await?;
        Ok(())
    }
}

fn photo(item: &Item) -> Result<Photo, AttributeError> {
    let state = match decode::string(item, "state")?.as_str() {
        "pending" => PhotoState::Pending,
        "ready" => PhotoState::Ready,
        "failed" => PhotoState::Failed,
        other => return Err(AttributeError::invalid("state", other, "pending, ready or failed")),
    };
    let dimension = |entry: &Item, name: &str| {
        let value: u64 = decode::number(entry, name)?;
        u32::try_from(value).map_err(|_| AttributeError::invalid(name, value.to_string(), "a pixel count"))
    };
    let thumbnails = decode::maps(item, "thumbnails")?
        .into_iter()
        .map(|entry| {
            let format = decode::string(entry, "format")?;
            Ok(ThumbnailRef {
                key: decode::string(entry, "key")?,
                format: OutputFormat::parse(&format)
                    .ok_or_else(|| AttributeError::invalid("format", &format, "jpeg or webp"))?,
                width: dimension(entry, "width")?,
                height: dimension(entry, "height")?,
            })
        })
        .collect::<Result<_, AttributeError>>()?;
    let optional_dimension = |name: &str| match item.get(name) {
        None => Ok(None),
        Some(_) => dimension(item, name).map(Some),
    };
    Ok(Photo {
        id: decode::string(item, "id")?,
        key: decode::string(item, "key")?,
        state,
        reason: decode::optional_string(item, "reason")?,
        width: optional_dimension("width")?,
        height: optional_dimension("height")?,
        bytes: decode::number(item, "bytes")?,
        thumbnails,
        uploaded_by: decode::string(item, "uploaded_by")?,
        uploaded_at: decode::string(item, "uploaded_at")?,
    })
}
