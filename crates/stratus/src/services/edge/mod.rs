//! The edge (CloudFront's role): serves the private site bucket over HTTP with real caching
//! semantics — strong ETags and 304s, `Last-Modified`, `HEAD`, byte ranges, precompressed
//! `br`/`gzip` with `Vary`, `Cache-Control` by kind of object — from a byte-bounded in-memory
//! cache that object events invalidate precisely. Edge hooks (Lambda@Edge's role) add security
//! headers, redirects and the custom 404 page. Nothing else can read the bucket.

mod config;
mod install;
pub use config::EdgeConfig;
pub(crate) use install::install;

mod front;
mod http_cache;
mod variants;

use std::io::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::apps::media::MediaConfig;
use crate::apps::media::thumbnail::DecodeLimits;
use crate::ports::blobs::parse_key;

/// Objects larger than this are served but not kept in memory.
const MAX_CACHED_OBJECT: usize = 8 * 1024 * 1024;

/// Paths under `/media/` are objects of the media bucket; their cache keys keep the prefix.
pub(crate) const MEDIA_PREFIX: &str = "media/";

/// Which layer answered, as CloudFront says it.
const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-cache");
const HIT: &str = "Hit from stratus-edge";
const MISS: &str = "Miss from stratus-edge";

/// One object as the edge serves it, with its precompressed variants.
#[derive(Debug)]
pub(crate) struct Cached {
    bytes: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
    /// Strong validator of the identity bytes, quoted.
    etag: String,
    last_modified: SystemTime,
    /// What every response about this object carries: its type, cache policy and dates, the
    /// viewer-response hook's headers and `x-cache: Hit` (a miss overwrites it).
    headers: HeaderMap,
    /// Complete headers of a plain `200` for each representation (identity, gzip, brotli),
    /// built once so a hit only clones them.
    prebuilt: [Option<HeaderMap>; 3],
}

impl Cached {
    fn weight(&self) -> u32 {
        let total = self.bytes.len()
            + self.gzip.as_ref().map_or(0, Bytes::len)
            + self.brotli.as_ref().map_or(0, Bytes::len);
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

#[derive(Debug)]
pub(crate) struct Edge {
    /// The site bucket, served at `/`.
    site: Arc<dyn ObjectStore>,
    /// The media bucket, served at `/media/`.
    media: Arc<dyn ObjectStore>,
    cache: moka::sync::Cache<String, Arc<Cached>>,
    config: EdgeConfig,
    /// Widths offered as on-the-fly variants of photos, and the decode limits for their originals.
    variant_widths: Vec<u32>,
    decode_limits: DecodeLimits,
    /// The viewer-response hook's headers, parsed once.
    security_headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EdgeError {
    #[error("cannot read the site bucket")]
    Store(#[from] object_store::Error),
    #[error("cannot compress a response")]
    Compress(#[source] std::io::Error),
}

impl Edge {
    pub(crate) fn new(
        site: Arc<dyn ObjectStore>,
        media: Arc<dyn ObjectStore>,
        config: &EdgeConfig,
        media_config: &MediaConfig,
        https: bool,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_bytes)
            .weigher(|_key: &String, value: &Arc<Cached>| value.weight())
            .build();
        let mut security_headers = vec![
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ];
        if let Ok(policy) = HeaderValue::from_str(&config.content_security_policy) {
            security_headers.push((header::CONTENT_SECURITY_POLICY, policy));
        }
        if https {
            // Only over TLS: HSTS on plain HTTP would be ignored at best.
            security_headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            ));
        }
        Self {
            site,
            media,
            cache,
            config: config.clone(),
            variant_widths: media_config.variant_widths.clone(),
            decode_limits: media_config.decode_limits(),
            security_headers,
        }
    }

    /// Forgets an object, as a CloudFront invalidation does; the next request reads the bucket.
    pub(crate) fn invalidate(&self, key: &str) {
        self.cache.invalidate(key);
        tracing::debug!(key, "edge cache invalidated");
    }

    /// Puts the edge in front of the origin, as CloudFront stands in front of API Gateway: a
    /// read of an object the edge holds in memory is answered at once, before routing, request
    /// ids and tracing; everything else goes on to `origin`, which must come from
    /// [`Edge::serve_unrouted`] so that what no route claims comes back to the edge.
    pub(crate) fn in_front_of<S>(self: Arc<Self>, origin: S) -> Router
    where
        S: tower::Service<axum::extract::Request, Response = Response, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
    {
        Router::new().fallback_service(front::Front::new(self, origin))
    }

    /// A read of a cached object, answered from memory; `None` for anything else. Only the
    /// fallback fills the cache, and the one alias it knows (`a/` for `a/index.html`) never
    /// names a route, so this answers exactly what the origin would have passed to the edge.
    fn answer_from_memory(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        if (method != Method::GET && method != Method::HEAD) || self.config.redirects.contains_key(uri.path())
        {
            return None;
        }
        // A query on a photo may ask for a variant: the slow path decides.
        if uri.query().is_some() && uri.path().starts_with("/media/") {
            return None;
        }
        // Keys reach the cache only after validation, so an unvalidated key just misses.
        let object = self.cache.get(&object_key(uri.path())?)?;
        Some(http_cache::respond(&object, method, headers, StatusCode::OK))
    }

    /// Makes the edge answer every request `router` has no route for (also GET on a path that
    /// only has, say, a POST route, such as `/`).
    pub(crate) fn serve_unrouted(self: Arc<Self>, router: Router) -> Router {
        let (edge, also_edge) = (Arc::clone(&self), self);
        router
            .fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
                serve(Arc::clone(&edge), method, uri, headers)
            })
            .method_not_allowed_fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
                serve(Arc::clone(&also_edge), method, uri, headers)
            })
    }

    /// The object for `key`, from memory when cached; `None` when it does not exist.
    async fn load(&self, key: &str) -> Result<Option<(Arc<Cached>, bool)>, EdgeError> {
        if let Some(cached) = self.cache.get(key) {
            return Ok(Some((cached, true)));
        }
        let (bucket, bucket_key) = match key.strip_prefix(MEDIA_PREFIX) {
            Some(media_key) => (&self.media, media_key),
            None => (&self.site, key),
        };
        let result = match bucket.get(&Path::from(bucket_key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let last_modified = SystemTime::from(result.meta.last_modified);
        let bytes = result.bytes().await?;
        let content_type = content_type(key);
        let compressible = is_compressible(content_type) && bytes.len() > 256;
        let (gzip, brotli) = if compressible {
            let source = bytes.clone();
            tokio::task::spawn_blocking(move || compress(&source))
                .await
                .map_err(|e| EdgeError::Compress(std::io::Error::other(e)))?
                .map_err(EdgeError::Compress)?
        } else {
            (None, None)
        };
        let mut headers = http_cache::common_headers(content_type, self.cache_control(key), last_modified);
        headers.extend(self.security_headers.iter().cloned());
        headers.insert(X_CACHE, HeaderValue::from_static(HIT));
        let mut cached = Cached {
            etag: format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16])),
            last_modified,
            headers,
            gzip,
            brotli,
            bytes,
            prebuilt: [None, None, None],
        };
        cached.prebuilt = http_cache::prebuilt_headers(&cached);
        let cached = Arc::new(cached);
        if cached.bytes.len() <= MAX_CACHED_OBJECT {
            self.cache.insert(key.to_owned(), Arc::clone(&cached));
        }
        Ok(Some((cached, false)))
    }

    fn cache_control(&self, key: &str) -> &'static str {
        // Fingerprinted assets, and photos under ids never reused: the bytes behind a name
        // never change.
        if key.starts_with("assets/") || key.starts_with(MEDIA_PREFIX) {
            "public, max-age=31536000, immutable"
        } else if key.ends_with(".html") || key.ends_with(".xml") {
            "public, max-age=60, stale-while-revalidate=600"
        } else {
            "public, max-age=300"
        }
    }

    /// The cache key of a variant of the photo `original`, made first when it does not exist.
    async fn variant(&self, original: &str, variant: variants::Variant) -> Result<String, Box<Response>> {
        let key = format!("{MEDIA_PREFIX}{}", variants::key(original, variant));
        if matches!(self.load(&key).await, Ok(Some(_))) {
            return Ok(key);
        }
        match variants::make(&self.media, original, variant, self.decode_limits).await {
            Ok(()) => Ok(key),
            Err(variants::VariantError::NoOriginal) => {
                Err(Box::new(error_page(StatusCode::NOT_FOUND, "There is no photo at this address.")))
            }
            Err(variants::VariantError::Image(reason)) => {
                Err(Box::new(error_page(StatusCode::UNPROCESSABLE_ENTITY, &reason.to_string())))
            }
            Err(error) => {
                tracing::error!(error = %crate::infra::telemetry::error_chain(&error), key, "cannot make a variant");
                Err(Box::new(error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The image could not be made. Try again.",
                )))
            }
        }
    }

    /// Security headers on every response (the viewer-response hook).
    fn decorate(&self, response: &mut Response) {
        let headers = response.headers_mut();
        for (name, value) in &self.security_headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

async fn serve(edge: Arc<Edge>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut response = respond(&edge, &method, &uri, &headers).await;
    edge.decorate(&mut response);
    response
}

/// Where a request path leads in the bucket.
enum Target {
    Object(String),
    Redirect(String),
    NotFound,
}

fn target(edge: &Edge, path: &str) -> Target {
    if let Some(location) = edge.config.redirects.get(path) {
        return Target::Redirect(location.clone());
    }
    match object_key(path) {
        Some(key) if parse_key(&key).is_ok() && servable(&key) => Target::Object(key),
        _ => Target::NotFound,
    }
}

/// Of the media bucket, only pictures: an upload that is no image is kept (as `.bin`) with its
/// photo marked failed, but never served from the site's origin.
fn servable(key: &str) -> bool {
    key.strip_prefix(MEDIA_PREFIX).is_none_or(|media| {
        [".jpg", ".png", ".webp", ".gif"].iter().any(|extension| media.ends_with(extension))
    })
}

/// The bucket key a request path names (`/` and `…/` name their `index.html`), not yet
/// validated.
fn object_key(path: &str) -> Option<String> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let relative = decoded.trim_start_matches('/');
    Some(if relative.is_empty() {
        "index.html".to_owned()
    } else if relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    })
}

async fn respond(edge: &Edge, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = error_page(StatusCode::METHOD_NOT_ALLOWED, "This address can only be read.");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let key = match target(edge, uri.path()) {
        Target::Redirect(location) => return redirect(&location),
        Target::NotFound => return not_found(edge, method).await,
        Target::Object(key) => key,
    };
    let asked = key
        .strip_prefix(MEDIA_PREFIX)
        .map(|original| (original, variants::requested(uri.query(), &edge.variant_widths)));
    let key = match asked {
        Some((original, Some(Ok(variant)))) => match edge.variant(original, variant).await {
            Ok(key) => key,
            Err(response) => return *response,
        },
        Some((_, Some(Err(reason)))) => return error_page(StatusCode::BAD_REQUEST, &reason),
        _ => key,
    };
    let loaded = match edge.load(&key).await {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(error = %crate::infra::telemetry::error_chain(&error), key, "edge cannot serve");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "The page could not be served. Try again.");
        }
    };
    let Some((object, hit)) = loaded else {
        // `/posts/hello` → `/posts/hello/` when that page exists.
        let last = key.rsplit('/').next().unwrap_or_default();
        if !last.contains('.') && matches!(edge.load(&format!("{key}/index.html")).await, Ok(Some(_))) {
            return redirect(&format!("{}/", uri.path()));
        }
        return not_found(edge, method).await;
    };
    let mut response = http_cache::respond(&object, method, headers, StatusCode::OK);
    if !hit {
        response.headers_mut().insert(X_CACHE, HeaderValue::from_static(MISS));
    }
    response
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The site's `404.html` when it has one, with status 404.
async fn not_found(edge: &Edge, method: &Method) -> Response {
    match edge.load("404.html").await {
        Ok(Some((page, _))) => http_cache::respond(&page, method, &HeaderMap::new(), StatusCode::NOT_FOUND),
        _ => error_page(StatusCode::NOT_FOUND, "There is no page at this address."),
    }
}

/// The edge's own errors are pages for browsers, not problem documents for API clients.
fn error_page(status: StatusCode, detail: &str) -> Response {
    crate::infra::http::page(status, status.canonical_reason().unwrap_or("Error"), detail)
}

fn content_type(key: &str) -> &'static str {
    let extension =
        key.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "xml" if key.ends_with("feed.xml") => "application/atom+xml; charset=utf-8",
        "xml" => "application/xml; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("xml")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg")
}

type Variants = (Option<Bytes>, Option<Bytes>);

/// gzip and brotli variants, kept only when smaller than the original.
fn compress(bytes: &[u8]) -> std::io::Result<Variants> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(bytes)?;
    let gzip = gzip.finish()?;
    let mut brotli = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut brotli, 4096, 9, 22);
        writer.write_all(bytes)?;
    }
    let smaller = |variant: Vec<u8>| (variant.len() < bytes.len()).then(|| Bytes::from(variant));
    Ok((smaller(gzip), smaller(brotli)))
}
