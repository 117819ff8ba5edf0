use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use stratus::ports::blobs::{KeyError, parse_key};
use stratus::ports::events::ObjectEvent;
use stratus::services::functions::{Host, ObjectTrigger};

use crate::support::{Recorder, TestPlatform};

fn record_events(host: &mut Host, name: &str, source: &str, trigger: ObjectTrigger) -> Recorder<ObjectEvent> {
    let recorder = Recorder::default();
    let seen = recorder.clone();
    host.on_object_event(name, source, trigger, move |_, event| {
        let seen = seen.clone();
        async move {
            seen.push(event);
            Ok(())
        }
    })
    .expect("register");
    recorder
}

#[tokio::test]
async fn an_upload_acknowledged_before_a_crash_still_yields_its_event() {
    let mut test = TestPlatform::new();
    let media = test.platform.buckets.bucket("media").expect("bucket");
    let key = parse_key("photos/summer trip.jpg").expect("key");
    let put = media.put(&key, PutPayload::from_static(b"jpeg bytes")).await.expect("put");
    // The process dies before any function ran; a new one opens the same data.
    drop(media);
    test.reopen();

    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let source = test.platform.buckets.bucket("media").expect("bucket").stream_source().to_owned();
    let events = record_events(
        &mut host,
        "thumbnail",
        &source,
        ObjectTrigger::created(&test.config.stream).prefix("photos/"),
    );
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;

    let events = events.all();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_name, "ObjectCreated:Put");
    assert_eq!(event.event_source, "aws:s3");
    assert_eq!(event.s3.bucket.name, "media");
    assert_eq!(event.s3.object.key, "photos/summer+trip.jpg", "keys are URL-encoded as S3 sends them");
    assert_eq!(event.key(), "photos/summer trip.jpg");
    assert_eq!(event.s3.object.size, Some(10));
    assert_eq!(event.s3.object.e_tag, put.e_tag);
    assert_eq!(event.s3.object.sequencer.len(), 16);
}

#[tokio::test]
async fn triggers_select_events_by_kind_prefix_and_suffix() {
    let test = TestPlatform::new();
    let media = test.platform.buckets.bucket("media").expect("bucket");
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let jpegs = record_events(
        &mut host,
        "jpegs",
        media.stream_source(),
        ObjectTrigger::created(&test.config.stream).prefix("photos/").suffix(".jpg"),
    );
    let removed = record_events(
        &mut host,
        "removals",
        media.stream_source(),
        ObjectTrigger::removed(&test.config.stream),
    );
    host.start().expect("start");

    for key in ["photos/a.jpg", "photos/b.png", "other/c.jpg"] {
        media.put(&parse_key(key).expect("key"), PutPayload::from_static(b"x")).await.expect("put");
    }
    let mut upload =
        media.put_multipart(&parse_key("photos/big.jpg").expect("key")).await.expect("multipart");
    upload.put_part(PutPayload::from(vec![1u8; 1000])).await.expect("part");
    upload.put_part(PutPayload::from(vec![2u8; 500])).await.expect("part");
    upload.complete().await.expect("complete");
    media.delete(&parse_key("photos/a.jpg").expect("key")).await.expect("delete");
    host.drain().await.expect("drain");
    host.shutdown().await;

    let created: Vec<(String, String, Option<u64>)> =
        jpegs.all().into_iter().map(|e| (e.event_name.clone(), e.key(), e.s3.object.size)).collect();
    assert_eq!(
        created,
        [
            ("ObjectCreated:Put".to_owned(), "photos/a.jpg".to_owned(), Some(1)),
            ("ObjectCreated:CompleteMultipartUpload".to_owned(), "photos/big.jpg".to_owned(), Some(1500)),
        ]
    );
    let removed: Vec<(String, String)> =
        removed.all().into_iter().map(|e| (e.event_name.clone(), e.key())).collect();
    assert_eq!(removed, [("ObjectRemoved:Delete".to_owned(), "photos/a.jpg".to_owned())]);
}

#[tokio::test]
async fn traversal_keys_are_refused_and_nothing_is_written_outside_the_bucket() {
    let test = TestPlatform::new();
    let media = test.platform.buckets.bucket("media").expect("bucket");
    let hostile = [
        "../escape",
        "../../escape",
        "a/../../escape",
        "%2e%2e/escape",
        "a/%2E%2E/%2e%2e/escape",
        "a\\..\\escape",
        "a\0b",
    ];
    for raw in hostile {
        assert!(parse_key(raw).is_err(), "{raw:?} must be refused");
    }
    // Paths built by other code are checked by the store too: `..` segments are refused...
    for raw in ["../escape", "a/../../escape", ".."] {
        let parts = Path::from_iter(raw.split('/'));
        assert!(media.put(&parts, PutPayload::from_static(b"owned")).await.is_err(), "{raw:?} as parts");
    }
    // ...and whatever an escaping constructor produces stays a literal name inside the bucket.
    for raw in hostile {
        let _ = media.put(&Path::from(raw), PutPayload::from_static(b"owned")).await;
    }
    assert_eq!(parse_key("a/%2e%2e/b"), Err(KeyError::Traversal));
    let bucket_dir = test.dir.path().join("test").join("buckets").join("media");
    for file in files_under(test.dir.path()) {
        let inside = file.starts_with(&bucket_dir)
            || file.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stratus.db"));
        assert!(inside, "{} was written outside the bucket", file.display());
    }
    let parent = test.dir.path().parent().expect("parent");
    assert!(!parent.join("escape").exists() && !test.dir.path().join("escape").exists());
    assert!(test.platform.buckets.bucket("../etc").is_err(), "bucket names are validated");
}

fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() { pending.push(path) } else { found.push(path) }
        }
    }
    found
}

#[tokio::test]
async fn local_notifications_have_the_fields_s3_sends() {
    let test = TestPlatform::new();
    let bucket = test.platform.buckets.bucket("media").expect("bucket");
    bucket
        .put(&parse_key("photos/a b.txt").expect("key"), PutPayload::from_static(b"hello"))
        .await
        .expect("put");
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    let trigger = ObjectTrigger::created(&test.config.stream);
    let events = record_events(&mut host, "shape", bucket.stream_source(), trigger);
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;

    let [event] = &events.all()[..] else { panic!("one event") };
    let written = serde_json::to_value(event).expect("writes");
    assert_eq!(written["s3"]["bucket"]["ownerIdentity"]["principalId"], "stratus");
    assert_eq!(written["responseElements"]["x-amz-request-id"].as_str().map(str::len), Some(16));
    // Every field of S3's published record is there (a version id only in versioned buckets).
    let fields = |value: &serde_json::Value| -> Vec<String> {
        value.as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default()
    };
    let published = &crate::events::fixture("s3-event.json")["Records"][0];
    for path in [&[][..], &["s3"], &["s3", "bucket"], &["userIdentity"], &["requestParameters"]] {
        let at = |mut value: &serde_json::Value| {
            for key in path {
                value = &value[*key];
            }
            fields(value)
        };
        assert_eq!(at(&written), at(published), "fields at {path:?}");
    }
    let mut object = fields(&published["s3"]["object"]);
    object.retain(|field| field != "versionId");
    assert_eq!(fields(&written["s3"]["object"]), object);
}

/// The object-store conformance suite on the local buckets, plain and encrypted at rest.
mod conformance {
    use std::sync::Arc;

    use object_store::ObjectStore;

    use crate::support::TestPlatform;

    async fn bucket(name: &str) -> (TestPlatform, Arc<dyn ObjectStore>) {
        let test = TestPlatform::new();
        let store: Arc<dyn ObjectStore> = test.platform.buckets.bucket(name).expect("bucket");
        (test, store)
    }

    mod plain {
        stratus::object_store_conformance_tests!(super::bucket("media"), supports_update: false);
    }

    mod encrypted {
        stratus::object_store_conformance_tests!(super::bucket("user-files"), supports_update: false);
    }
}
