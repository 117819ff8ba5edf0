//! Object storage on S3: object_store's S3 client, one store per bucket, so the functions read
//! and write the same `ObjectStore` trait they use locally. Event notifications are S3's own
//! (configured by the template), so no decorator is needed here.
//!
//! Settings come from the environment as object_store reads it (`AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL_S3`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` for S3-compatible
//! engines that want path-style addresses), plus the bucket names the template chose:
//! `STRATUS_AWS_BUCKET_<NAME>` (upper case, `-` as `_`) for the bucket the code calls `<name>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3CopyIfNotExists};

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("cannot open S3 bucket `{bucket}`")]
    Open {
        bucket: String,
        #[source]
        source: object_store::Error,
    },
}

/// How buckets are reached: the builder every bucket starts from, and the names of the real
/// buckets behind the code's names.
#[derive(Debug, Clone)]
pub struct S3Settings {
    base: AmazonS3Builder,
    names: HashMap<String, String>,
}

impl S3Settings {
    /// From the environment, as Lambda gives it.
    pub fn from_env() -> Self {
        let names = std::env::vars()
            .filter_map(|(name, value)| {
                let logical = name.strip_prefix("STRATUS_AWS_BUCKET_")?;
                Some((logical.to_ascii_lowercase().replace('_', "-"), value))
            })
            .collect();
        Self { base: with_preconditions(AmazonS3Builder::from_env()), names }
    }

    /// An S3-compatible endpoint (an emulator, MinIO), addressed path-style over plain HTTP
    /// when `endpoint` says `http://`.
    pub fn compatible(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Self {
        let base = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_region(region)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
        Self { base: with_preconditions(base), names: HashMap::new() }
    }

    /// The real bucket behind `logical`.
    #[must_use]
    pub fn name(mut self, logical: &str, bucket: &str) -> Self {
        self.names.insert(logical.to_owned(), bucket.to_owned());
        self
    }

    fn bucket_name<'a>(&'a self, logical: &'a str) -> &'a str {
        self.names.get(logical).map_or(logical, String::as_str)
    }
}

/// Conditional writes as S3 has them since 2024: `If-None-Match` on puts (object_store's
/// default) and on completing a multipart upload, which is how a copy that must not overwrite
/// is done (S3's `CopyObject` takes no such condition).
fn with_preconditions(builder: AmazonS3Builder) -> AmazonS3Builder {
    builder.with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
}

/// The buckets of a deployment, each opened once.
#[derive(Debug)]
pub struct S3Buckets {
    settings: S3Settings,
    open: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl S3Buckets {
    pub fn new(settings: S3Settings) -> Self {
        crate::sdk::install_crypto();
        Self { settings, open: Mutex::new(HashMap::new()) }
    }

    /// The store of the bucket the code calls `logical`.
    pub fn bucket(&self, logical: &str) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open.get(logical) {
            return Ok(Arc::clone(store) as Arc<dyn ObjectStore>);
        }
        let bucket = self.settings.bucket_name(logical).to_owned();
        let store = self
            .settings
            .base
            .clone()
            .with_bucket_name(&bucket)
            .build()
            .map_err(|source| ObjectsError::Open { bucket: bucket.clone(), source })?;
        let store = Arc::new(store);
        open.insert(logical.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}
