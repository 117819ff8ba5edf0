//! `[media]`: the photo bucket, thumbnail sizes and formats, and the limits on what is decoded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::thumbnail::{DecodeLimits, OutputFormat};
use crate::infra::settings::{Invalid, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The bucket photos are uploaded to and served from under `/media/`.
    pub bucket: String,
    /// Long edges of the thumbnails made for every photo (never larger than the photo).
    pub thumbnail_widths: Vec<u32>,
    /// Formats of every thumbnail: `jpeg`, `webp`.
    pub thumbnail_formats: Vec<OutputFormat>,
    /// Largest photo accepted, in pixels (width × height, read from the header).
    pub max_pixels: u64,
    /// Memory one decode may take, in bytes, known from the header before decoding: a PNG,
    /// WebP or GIF is decoded whole (4 bytes a pixel for RGBA, plus an RGB copy); a JPEG only at
    /// the scale its largest thumbnail needs, except progressive ones, which hold 2 bytes a pixel
    /// and component. At most one decode runs per core.
    pub max_decode_bytes: u64,
    /// Largest upload accepted, in bytes (413 beyond).
    pub max_upload_bytes: usize,
    /// Widths the edge makes on request (`/media/<key>?w=640&format=webp`); others get 400.
    pub variant_widths: Vec<u32>,
    /// How long a presigned upload URL stays valid.
    #[serde(with = "humantime_serde")]
    pub upload_link_ttl: Duration,
}

impl MediaConfig {
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits { max_pixels: self.max_pixels, max_bytes: self.max_decode_bytes }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bucket: "media".into(),
            thumbnail_widths: vec![256, 1024],
            thumbnail_formats: vec![OutputFormat::Jpeg, OutputFormat::Webp],
            max_pixels: DecodeLimits::DEFAULT.max_pixels,
            max_decode_bytes: DecodeLimits::DEFAULT.max_bytes,
            max_upload_bytes: 25 * 1024 * 1024,
            variant_widths: vec![320, 640, 960, 1280, 1920],
            upload_link_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl MediaConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if crate::ports::blobs::validate_bucket_name(&self.bucket).is_err() {
            return invalid("media.bucket", "must be a valid bucket name");
        }
        if self.thumbnail_widths.is_empty() || self.thumbnail_widths.iter().any(|w| !(16..=4096).contains(w))
        {
            return invalid("media.thumbnail_widths", "must list widths between 16 and 4096");
        }
        if self.variant_widths.iter().any(|w| !(16..=4096).contains(w)) {
            return invalid("media.variant_widths", "must list widths between 16 and 4096");
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600)).contains(&self.upload_link_ttl) {
            return invalid("media.upload_link_ttl", "must be between 1m and 7days");
        }
        if self.thumbnail_formats.is_empty() {
            return invalid("media.thumbnail_formats", "must list at least one of jpeg, webp");
        }
        if !(1_000_000..=1_000_000_000).contains(&self.max_pixels) {
            return invalid("media.max_pixels", "must be between 1 and 1000 megapixels");
        }
        if !(16 * 1024 * 1024..=16 * 1024 * 1024 * 1024).contains(&self.max_decode_bytes) {
            return invalid("media.max_decode_bytes", "must be between 16 MiB and 16 GiB");
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_upload_bytes) {
            return invalid("media.max_upload_bytes", "must be between 1 KiB and 1 GiB");
        }
        Ok(())
    }
}
