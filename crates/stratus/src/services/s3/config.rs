//! `[s3]`: the S3-compatible endpoint's own listener, the domain of its virtual-host addresses,
//! the buckets it creates and the sizes it accepts.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};
use crate::ports::blobs::validate_bucket_name;

/// S3's own limits: 5 GiB per object written at once or part, 5 MiB minimum for every part but
/// the last, 10,000 parts.
pub(super) const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub(super) const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub(super) const MAX_PARTS: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Off: no S3 listener.
    pub enabled: bool,
    /// The endpoint's own address: S3's path-style URLs (`/<bucket>/<key>`) would collide with
    /// the site's paths on the main listener. Default: the server's address, next port (8081
    /// beside 8080; a free port when the server's is 0).
    pub listen: Option<SocketAddr>,
    /// What clients are told to use, when a proxy or TLS terminator sits in front; default
    /// `http(s)://<listen address>`.
    pub public_url: Option<String>,
    /// Virtual-host addressing: `<bucket>.<domain>` names the bucket in the Host header.
    pub domain: String,
    /// Buckets created at start-up (the identity pools' users' folders live in `user-files`).
    pub buckets: Vec<String>,
    /// The largest object a single PUT may write, and the largest part.
    pub max_object_bytes: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            public_url: None,
            domain: "localhost".into(),
            buckets: vec!["user-files".into()],
            max_object_bytes: MAX_PART_BYTES,
        }
    }
}

impl S3Config {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(bucket) = self.buckets.iter().find(|bucket| validate_bucket_name(bucket).is_err()) {
            return invalid(
                "s3.buckets",
                format!("`{bucket}` is not a bucket name (3-63 of a-z, 0-9, '.', '-')"),
            );
        }
        if self.domain.is_empty() || self.domain.contains(['/', ':']) {
            return invalid("s3.domain", "must be a host name such as `localhost`");
        }
        if !(1..=MAX_PART_BYTES).contains(&self.max_object_bytes) {
            return invalid("s3.max_object_bytes", "must be between 1 and 5 GiB");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("s3.public_url", "must start with http:// or https://");
        }
        Ok(())
    }

    /// Where the endpoint listens, given where the server does.
    pub fn address(&self, server: SocketAddr) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let port = if server.port() == 0 { 0 } else { server.port().saturating_add(1) };
            SocketAddr::new(server.ip(), port)
        })
    }

    /// `<scheme>://<address>` of the socket the endpoint listens on, unless configured.
    pub fn public_url(&self, scheme: &str, listening: SocketAddr) -> String {
        self.public_url
            .as_deref()
            .map_or_else(|| format!("{scheme}://{listening}"), |url| url.trim_end_matches('/').to_owned())
    }
}
