//! The AWS SDK's shared configuration: region, credentials and endpoint from the standard
//! sources (Lambda's environment; `AWS_ENDPOINT_URL` for an emulator), over an HTTPS client on
//! rustls with ring, the crypto the rest of Stratus uses.

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// A loader with Stratus's HTTP client, for callers that set more (tests set an endpoint).
pub fn loader() -> ConfigLoader {
    let client = Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(client)
}

/// The SDK configuration from the environment, loaded once per process.
pub async fn load() -> SdkConfig {
    loader().load().await
}

/// Makes ring rustls's process-wide provider, for the clients that take it from there
/// (object_store's S3 client); idempotent.
pub fn install_crypto() {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
