//! The edge installed in front of the site and media buckets, kept fresh by their object events.

use std::sync::Arc;

use super::{Edge, EdgeConfig, MEDIA_PREFIX};
use crate::apps::media::MediaConfig;
use crate::component::{InstallError, Installer};
use crate::services::functions::ObjectTrigger;

/// The edge in front of the site and media buckets, kept fresh by their object events.
pub(crate) fn install(
    with: &mut Installer<'_>,
    config: &EdgeConfig,
    site_bucket: &str,
    media: &MediaConfig,
) -> Result<Arc<Edge>, InstallError> {
    let bucket =
        |name: &str| with.platform.buckets.bucket(name).map_err(|e| InstallError::open("edge's buckets", e));
    let (site, media_bucket) = (bucket(site_bucket)?, bucket(&media.bucket)?);
    let (site_source, media_source) =
        (site.stream_source().to_owned(), media_bucket.stream_source().to_owned());
    let https = with.public_url.starts_with("https://");
    let edge = Arc::new(Edge::new(site, media_bucket, config, media, https));
    let host = &mut *with.host;
    let invalidated = Arc::clone(&edge);
    host.on_object_event(
        "edge-invalidate",
        &site_source,
        ObjectTrigger::any(with.stream),
        move |_, event| {
            invalidated.invalidate(&event.key());
            async { Ok(()) }
        },
    )?;
    let invalidated = Arc::clone(&edge);
    let trigger = ObjectTrigger::any(with.stream);
    host.on_object_event("media-edge-invalidate", &media_source, trigger, move |_, event| {
        invalidated.invalidate(&format!("{}{}", MEDIA_PREFIX, event.key()));
        async { Ok(()) }
    })?;
    Ok(edge)
}
