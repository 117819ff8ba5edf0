//! Wiring: the endpoint on a listener of its own, with the gate as s3s's auth and access, and
//! virtual-host addressing under the configured domain.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use object_store::local::LocalFileSystem;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use super::access::Gate;
use super::catalog::Catalog;
use super::{Endpoint, S3Config};
use crate::component::InstallError;
use crate::infra::http::ServerConfig;
use crate::infra::http::metrics::HttpMetrics;
use crate::infra::http::server::Listener;
use crate::platform::Platform;
use crate::services::cognito::credentials::CredentialStore;
use crate::services::cognito::identity_pool::IdentityPools;
use crate::services::iam::Iam;

/// The endpoint, bound and ready to serve.
#[derive(Debug)]
pub(crate) struct S3Listener {
    listener: Listener,
    router: Router,
    public_url: String,
}

impl S3Listener {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    pub(crate) fn public_url(&self) -> &str {
        &self.public_url
    }

    pub(crate) async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(address = %self.listener.local_addr(), "S3 endpoint listening");
        self.listener.serve(self.router, shutdown).await;
    }
}

/// What the endpoint is built from.
#[derive(Debug)]
pub(crate) struct S3Parts<'a> {
    pub(crate) platform: &'a Platform,
    pub(crate) credentials: Arc<CredentialStore>,
    pub(crate) pools: Arc<IdentityPools>,
    pub(crate) iam: Arc<Iam>,
    pub(crate) server: &'a ServerConfig,
    /// The main listener's TLS, which the endpoint serves too.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Reachable through the edge only (CloudFront's origin access control): the site's.
    pub(crate) operator_only: BTreeSet<String>,
}

pub(crate) async fn install(
    config: &S3Config,
    parts: S3Parts<'_>,
) -> Result<Option<S3Listener>, InstallError> {
    if !config.enabled {
        return Ok(None);
    }
    let open = |source: std::io::Error| InstallError::open("S3 endpoint", source);
    let platform = parts.platform;
    for bucket in &config.buckets {
        platform
            .buckets
            .bucket(bucket)
            .map_err(|error| InstallError::open("S3 endpoint's buckets", error))?;
    }
    let uploads = platform.stage_dir().join("s3-uploads");
    std::fs::create_dir_all(&uploads).map_err(open)?;
    let parts_store = LocalFileSystem::new_with_prefix(&uploads)
        .map_err(|error| InstallError::open("S3 endpoint's uploads", error))?
        .with_automatic_cleanup(true);
    let catalog = Catalog::open(Arc::clone(&platform.db))
        .map_err(|error| InstallError::open("S3 endpoint's catalog", error))?;
    let gate = Gate::new(
        parts.credentials,
        parts.pools,
        parts.iam,
        Arc::clone(&platform.clock),
        parts.operator_only,
    );
    let endpoint = Endpoint {
        buckets: Arc::clone(&platform.buckets),
        catalog,
        parts: parts_store,
        gate: gate.clone(),
        clock: Arc::clone(&platform.clock),
        region: platform.region().to_owned(),
        max_object_bytes: config.max_object_bytes,
    };
    let mut builder = S3ServiceBuilder::new(endpoint);
    builder.set_auth(gate.clone());
    builder.set_access(gate);
    builder.set_host(Hosts { domain: config.domain.clone() });
    let service = builder.build();
    let socket = TcpListener::bind(config.address(parts.server.listen)).await.map_err(open)?;
    let mut listener = Listener::new(socket, parts.server, HttpMetrics::default()).map_err(open)?;
    if let Some(tls) = parts.tls {
        listener = listener.with_tls(tls);
    }
    let public_url = config.public_url(parts.server.scheme(), listener.local_addr());
    let s3 = tower::service_fn(move |request: axum::http::Request<axum::body::Body>| {
        let service = service.clone();
        async move {
            if let Some(refusal) = super::access::refuses_sigv2(&request) {
                return Ok(refusal);
            }
            let request = request.map(s3s::Body::http_body_unsync);
            let response = match service.call(request).await {
                Ok(response) => response.map(axum::body::Body::new),
                Err(error) => {
                    tracing::error!(error = ?error, "S3 request failed");
                    axum::http::Response::builder()
                        .status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                        .body(axum::body::Body::empty())
                        .unwrap_or_default()
                }
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let router = Router::new()
        .fallback_service(s3)
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span));
    Ok(Some(S3Listener { listener, router, public_url }))
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!("s3", method = %request.method(), path = %request.uri().path())
}

/// Virtual-host addressing: `<bucket>.<domain>[:port]` names the bucket; any other host (the
/// domain itself, an IP address, a proxy's name) is path-style.
#[derive(Debug)]
struct Hosts {
    domain: String,
}

impl S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        // Without its port: `localhost:9000` and `[::1]:9000` (a bracketed address keeps its
        // colons inside the brackets).
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) => name,
            _ => host,
        };
        match name.strip_suffix(self.domain.as_str()).and_then(|rest| rest.strip_suffix('.')) {
            Some(bucket) if !bucket.is_empty() => {
                Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket))
            }
            _ => Ok(VirtualHost::new(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subdomain_of_the_domain_names_the_bucket_and_anything_else_is_path_style() {
        let hosts = Hosts { domain: "localhost".into() };
        let bucket = |host: &str| hosts.parse_host_header(host).unwrap().bucket().map(str::to_owned);
        assert_eq!(bucket("user-files.localhost:9000").as_deref(), Some("user-files"));
        assert_eq!(bucket("user-files.localhost").as_deref(), Some("user-files"));
        for path_style in
            ["localhost:9000", "127.0.0.1:9000", "[::1]:9000", "s3.example.com", "evil-localhost:1"]
        {
            assert_eq!(bucket(path_style), None, "{path_style}");
        }
    }
}
