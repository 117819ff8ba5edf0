//! What the tests against an AWS emulator share: the SDK configured for it. `scripts/test`
//! starts moto's server on a free loopback port and names it in `STRATUS_TEST_AWS_ENDPOINT`.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The emulator's address.
pub(crate) fn endpoint() -> String {
    std::env::var("STRATUS_TEST_AWS_ENDPOINT").expect(
        "STRATUS_TEST_AWS_ENDPOINT names the AWS emulator these tests run against; \
         ./scripts/test starts moto's server and sets it",
    )
}

/// The SDK configured for the emulator.
#[allow(dead_code, reason = "not every test binary uses the SDK")]
pub(crate) async fn emulator() -> SdkConfig {
    stratus_aws::sdk::loader()
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "stratus-tests"))
        .load()
        .await
}

/// A name no other test of this run uses, so each test case gets fresh tables and buckets.
pub(crate) fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A plain HTTP client for what the tests ask the emulator directly.
#[allow(dead_code, reason = "not every test binary asks the emulator directly")]
pub(crate) fn http() -> reqwest_s3::Client {
    stratus_aws::sdk::install_crypto();
    reqwest_s3::Client::new()
}

/// One call of an AWS JSON or query API on the emulator, which reads the service from the
/// credential scope and does not check the signature.
#[allow(dead_code, reason = "not every test binary asks the emulator directly")]
pub(crate) fn unsigned(service: &str) -> reqwest_s3::RequestBuilder {
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    http().post(endpoint()).header("authorization", scope)
}
