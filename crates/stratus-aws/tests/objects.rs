//! The object-store conformance suite on S3 (moto's server) through the adapter.

mod support;

use std::sync::Arc;

use object_store::ObjectStore;
use stratus_aws::objects::{S3Buckets, S3Settings};

/// A fresh bucket on the emulator, as the code's `media` bucket.
async fn bucket() -> ((), Arc<dyn ObjectStore>) {
    let endpoint = support::endpoint();
    let name = support::unique_name("bucket");
    let created = support::http().put(format!("{endpoint}/{name}")).send().await.expect("create bucket");
    assert!(created.status().is_success(), "create bucket: {}", created.status());
    let settings = S3Settings::compatible(&endpoint, "us-east-1", "testing", "testing").name("media", &name);
    ((), S3Buckets::new(settings).bucket("media").expect("open the bucket"))
}

stratus::object_store_conformance_tests!(bucket(), supports_update: true);

/// Keys whose segments hold a percent-encoded `/`: S3 stores them as any other.
#[tokio::test]
async fn put_get_delete_list() {
    let ((), store) = bucket().await;
    object_store::integration::put_get_delete_list(store.as_ref()).await;
}
