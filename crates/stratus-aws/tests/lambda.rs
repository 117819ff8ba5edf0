//! The Lambda entry point, invoked in-process with AWS's event JSON for each trigger (the
//! shapes of AWS's documentation), over the AWS adapters on moto's server.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use object_store::ObjectStoreExt as _;
use serde_json::Value;
use stratus::apps::blog::store;
use stratus::apps::media::photos::{self, PhotoState, PhotoStore};
use stratus::infra::clock::SystemClock;
use stratus::ports::mail::sent_log_spec;
use stratus::ports::table::TableSpec;
use stratus_aws::dynamodb::{DynamoTable, WhenMissing};
use stratus_aws::lambda::{BuildError, Handler, InvokeError, Ports, build, invoke, without_stage};
use stratus_aws::objects::S3Settings;
use tower::ServiceExt as _;

const SUBSCRIBERS: &str = include_str!("events/dynamodb-insert-subscribers.json");
const REST_REQUEST: &str = include_str!("events/apigateway-rest.json");
const POST_CHANGED: &str = include_str!("../../stratus/tests/data/dynamodb-stream-event.json");
const UPLOADED: &str = include_str!("../../stratus/tests/data/s3-event.json");

/// A deployment on the emulator: the tables and buckets the template would create, under
/// names of their own, and the environment Lambda would give the functions.
struct Deployment {
    config: aws_config::SdkConfig,
    env: HashMap<String, String>,
    buckets: S3Settings,
    sender: String,
}

impl Deployment {
    async fn new() -> Self {
        let config = support::emulator().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let mut env = HashMap::new();
        let specs: [TableSpec; 3] = [store::table_spec(), photos::table_spec(), sent_log_spec()];
        for spec in specs {
            let name = support::unique_name(&spec.name);
            let variable = format!("STRATUS_AWS_TABLE_{}", spec.name.to_ascii_uppercase().replace('-', "_"));
            DynamoTable::open(dynamodb.clone(), spec, name.clone(), WhenMissing::Create)
                .await
                .expect("table");
            env.insert(variable, name);
        }
        let endpoint = support::endpoint();
        let mut buckets = S3Settings::compatible(&endpoint, "us-east-1", "testing", "testing");
        for logical in ["site", "media"] {
            let name = support::unique_name(logical);
            let created = support::http().put(format!("{endpoint}/{name}")).send().await.expect("bucket");
            assert!(created.status().is_success());
            buckets = buckets.name(logical, &name);
        }
        let sender = format!("{}@example.com", support::unique_name("blog"));
        env.insert("STRATUS_MAIL__FROM".into(), sender.clone());
        env.insert("STRATUS_SERVER__PUBLIC_URL".into(), "https://blog.example".into());
        Self { config, env, buckets, sender }
    }

    fn ports(&self) -> Ports {
        Ports::new(&self.config, &self.env, self.buckets.clone()).expect("ports")
    }

    async fn function(&self, name: &str) -> Handler {
        build(name, &self.ports()).await.unwrap_or_else(|e| panic!("build {name}: {e}"))
    }

    async fn verify_sender(&self) {
        let ses = aws_sdk_sesv2::Client::new(&self.config);
        ses.create_email_identity().email_identity(&self.sender).send().await.expect("verify the sender");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("event JSON")
}

#[tokio::test]
async fn a_rest_api_request_reaches_the_api_without_its_stage() {
    let deployment = Deployment::new().await;
    let Handler::Http(router) = deployment.function("api").await else {
        panic!("the api is an HTTP function")
    };
    let request = lambda_http::request::from_str(REST_REQUEST).expect("an API Gateway REST event");
    assert_eq!(request.uri().path(), "/prod/v1/posts", "lambda_http puts the stage in front");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
    let response = without_stage(router).oneshot(request).await.expect("response");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listed: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(listed["items"], Value::Array(Vec::new()), "{listed}");
}

#[tokio::test]
async fn new_subscribers_are_welcomed_once_and_a_failure_names_its_sequence_number() {
    let deployment = Deployment::new().await;
    let welcome = deployment.function("welcome-email").await;
    // The sender is not verified yet: SES refuses, and the batch reports the first record, so
    // Lambda retries from there.
    let response = invoke(&welcome, json(SUBSCRIBERS)).await.expect("a partial batch response");
    assert_eq!(
        response,
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "4421584500000000017450439091" }] })
    );
    deployment.verify_sender().await;
    let response = invoke(&welcome, json(SUBSCRIBERS)).await.expect("response");
    assert_eq!(response, serde_json::json!({ "batchItemFailures": [] }));
    // Delivered again (Lambda delivers at least once): nothing is sent twice.
    let again = invoke(&welcome, json(SUBSCRIBERS)).await.expect("response");
    assert_eq!(again, serde_json::json!({ "batchItemFailures": [] }));
    let sent_log = deployment.ports().table(sent_log_spec()).await.expect("sent-log");
    for address in ["ada@example.com", "grace@example.com"] {
        let key = stratus::item! { "key" => format!("welcome/{address}") };
        let entry = sent_log.get_consistent(&key).await.expect("get").expect("logged");
        assert_eq!(entry["state"], "sent".into());
    }
}

#[tokio::test]
async fn a_changed_post_renders_the_site_into_its_bucket() {
    let deployment = Deployment::new().await;
    let generator = deployment.function("site-generator").await;
    let site = deployment.ports().bucket("site").expect("bucket");
    let page = |name: &'static str| {
        let site = Arc::clone(&site);
        async move {
            let page = site.get(&object_store::path::Path::from(name)).await.expect(name);
            String::from_utf8(page.bytes().await.expect("bytes").to_vec()).expect("text")
        }
    };
    // Built on a fresh stack, the function renders the site's index before any post.
    assert!(page("index.html").await.contains("<html"));
    site.delete(&object_store::path::Path::from("404.html")).await.expect("delete");
    let response = invoke(&generator, json(POST_CHANGED)).await.expect("rendered");
    assert_eq!(response, serde_json::json!({ "batchItemFailures": [] }));
    assert!(page("404.html").await.contains("<html"), "the change rendered the shared pages");
}

#[tokio::test]
async fn an_uploaded_photo_gets_its_thumbnails() {
    let deployment = Deployment::new().await;
    let thumbnail = deployment.function("thumbnail").await;
    let ports = deployment.ports();
    let photos =
        PhotoStore::new(ports.table(photos::table_spec()).await.expect("table"), Arc::new(SystemClock));
    let id = "0123456789abcdef0123456789abcdef";
    let key = format!("photos/{id}.jpg");
    photos.create(id, &key, "ada").await.expect("photo item");
    let media = ports.bucket("media").expect("bucket");
    media.put(&object_store::path::Path::from(key.as_str()), jpeg(640, 480).into()).await.expect("upload");
    // AWS's example notification, naming this upload.
    let mut event = json(UPLOADED);
    event["Records"][0]["s3"]["object"]["key"] = key.clone().into();
    invoke(&thumbnail, event).await.expect("thumbnails made");
    let photo = photos.get(id).await.expect("get").expect("photo");
    assert_eq!(photo.state, PhotoState::Ready, "{photo:?}");
    assert_eq!((photo.width, photo.height), (Some(640), Some(480)));
    assert!(!photo.thumbnails.is_empty());
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_an_unknown_handler_is_refused() {
    let deployment = Deployment::new().await;
    let generator = deployment.function("site-generator").await;
    for malformed in
        [serde_json::json!({}), serde_json::json!({ "Records": [{ "eventName": 5 }] }), json(UPLOADED)]
    {
        let result = invoke(&generator, malformed).await;
        assert!(matches!(result, Err(InvokeError::Malformed { .. })), "got {result:?}");
    }
    let thumbnail = deployment.function("thumbnail").await;
    let result = invoke(&thumbnail, json(SUBSCRIBERS)).await;
    assert!(matches!(result, Err(InvokeError::Malformed { .. })), "got {result:?}");
    let unknown = build("nope", &deployment.ports()).await;
    assert!(matches!(unknown, Err(BuildError::Unknown { .. })), "got {unknown:?}");
}

/// A JPEG photo of `width` × `height`.
fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let pixels: Vec<u8> = (0..u32::from(width) * u32::from(height))
        .flat_map(|i| [(i % 256) as u8, (i / 256 % 256) as u8, 128])
        .collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 85)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    bytes
}

#[tokio::test]
async fn a_stage_named_like_the_first_segment_of_a_path_is_not_taken_off_it() {
    let echo = axum::Router::new().fallback(|uri: axum::http::Uri| async move { uri.path().to_owned() });
    let mut event = json(REST_REQUEST);
    event["requestContext"]["stage"] = "v1".into();
    let request = lambda_http::request::from_str(&event.to_string()).expect("an API Gateway REST event");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
    let response = without_stage(echo).oneshot(request).await.expect("response");
    let body = axum::body::to_bytes(response.into_body(), 1 << 10).await.expect("body");
    assert_eq!(&body[..], b"/v1/posts");
}
