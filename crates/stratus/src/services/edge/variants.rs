//! On-the-fly image variants (Lambda@Edge's real-time image transformation):
//! `/media/<key>?w=640&format=webp` is a resized copy of a photo in one of a bounded set of
//! widths, made once with the thumbnail engine, kept in the media bucket under `variants/` and
//! then served like any object (memory cache, validators, a year of caching downstream).

use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};

use crate::apps::media::thumbnail::{DecodeLimits, OutputFormat, ThumbnailError, render_queued};
use object_store::ObjectStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Variant {
    pub width: u32,
    pub format: OutputFormat,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum VariantError {
    #[error("no such photo")]
    NoOriginal,
    #[error(transparent)]
    Image(#[from] ThumbnailError),
    #[error("cannot read or write the media bucket")]
    Store(#[from] object_store::Error),
    #[error("the resize task stopped")]
    Task(#[from] tokio::task::JoinError),
}

/// The variant a query asks for: `None` when it asks for none (no `w`, no `format`), `Err` with
/// the reason when it asks for one that is not offered.
pub(super) fn requested(query: Option<&str>, widths: &[u32]) -> Option<Result<Variant, String>> {
    #[derive(serde::Deserialize)]
    struct Asked {
        w: Option<String>,
        format: Option<String>,
    }
    let Asked { w: width, format } = serde_urlencoded::from_str(query?).ok()?;
    if width.is_none() && format.is_none() {
        return None;
    }
    let offered = || widths.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let width = match width.as_deref().map(str::parse::<u32>) {
        Some(Ok(width)) if widths.contains(&width) => width,
        _ => return Some(Err(format!("`w` must be one of {}", offered()))),
    };
    let format = match format.as_deref().map_or(Some(OutputFormat::Jpeg), OutputFormat::parse) {
        Some(format) => format,
        None => return Some(Err("`format` must be jpeg or webp".into())),
    };
    Some(Ok(Variant { width, format }))
}

/// Where a variant of `original` lives in the media bucket.
pub(super) fn key(original: &str, variant: Variant) -> String {
    format!("variants/{}/{original}.{}", variant.width, variant.format.extension())
}

/// Makes the variant object from the original (a second call rewrites the same bytes).
pub(super) async fn make(
    media: &dyn ObjectStore,
    original: &str,
    variant: Variant,
    limits: DecodeLimits,
) -> Result<(), VariantError> {
    let bytes = match media.get(&Path::from(original)).await {
        Ok(result) => result.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Err(VariantError::NoOriginal),
        Err(error) => return Err(error.into()),
    };
    let rendered = render_queued(bytes, vec![variant.width], vec![variant.format], limits).await??;
    let thumbnail =
        rendered.thumbnails.into_iter().next().ok_or(ThumbnailError::Encode("nothing rendered".into()))?;
    media.put(&Path::from(key(original, variant)), PutPayload::from(thumbnail.bytes)).await?;
    tracing::info!(original, width = variant.width, format = variant.format.extension(), "variant made");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_ask_for_offered_variants_only() {
        let widths = [320, 640];
        assert_eq!(requested(None, &widths), None);
        assert_eq!(requested(Some("utm=x"), &widths), None);
        assert_eq!(
            requested(Some("w=640&format=webp"), &widths),
            Some(Ok(Variant { width: 640, format: OutputFormat::Webp }))
        );
        assert_eq!(
            requested(Some("w=320"), &widths),
            Some(Ok(Variant { width: 320, format: OutputFormat::Jpeg }))
        );
        assert!(matches!(requested(Some("w=641"), &widths), Some(Err(_))));
        assert!(matches!(requested(Some("w=640&format=gif"), &widths), Some(Err(_))));
        assert!(matches!(requested(Some("format=webp"), &widths), Some(Err(_))));
        assert_eq!(
            key("photos/a.jpg", Variant { width: 640, format: OutputFormat::Webp }),
            "variants/640/photos/a.jpg.webp"
        );
    }
}
