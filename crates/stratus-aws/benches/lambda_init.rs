//! The bootstrap's cold start, measured locally: the release `bootstrap` is started against a
//! Lambda Runtime API served here (the protocol Lambda speaks to it), over the AWS adapters on
//! moto's server, and timed from process start to its first response, for the `api` function
//! answering an API Gateway REST request. Also prints the binary's size, stripped.
//!
//!   scripts/with-moto cargo bench -p stratus-aws --bench lambda_init

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use stratus_aws::dynamodb::{DynamoTable, WhenMissing};
use tokio::sync::mpsc;

const RUNS: usize = 10;
const REST_REQUEST: &str = include_str!("../tests/events/apigateway-rest.json");

#[derive(Clone)]
struct RuntimeApi {
    responses: mpsc::UnboundedSender<(Instant, String)>,
}

async fn next_invocation(State(_): State<RuntimeApi>) -> (HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now() + Duration::from_secs(30);
    let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    headers.insert("lambda-runtime-aws-request-id", "bench-request".parse().expect("header"));
    headers.insert("lambda-runtime-deadline-ms", deadline_ms.to_string().parse().expect("header"));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:api".parse().expect("header"),
    );
    (headers, REST_REQUEST)
}

async fn invocation_response(State(api): State<RuntimeApi>, body: String) -> &'static str {
    let _ = api.responses.send((Instant::now(), body));
    "{}"
}

async fn init_error(body: String) -> &'static str {
    eprintln!("init error: {body}");
    "{}"
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::var("STRATUS_TEST_AWS_ENDPOINT").expect("run under scripts/with-moto");
    let sdk = stratus_aws::sdk::loader()
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
        .load()
        .await;
    let table = format!("bench-blog-{}", std::process::id());
    DynamoTable::open(
        aws_sdk_dynamodb::Client::new(&sdk),
        stratus::apps::blog::store::table_spec(),
        table.clone(),
        WhenMissing::Create,
    )
    .await
    .expect("the blog table");

    let (responses, mut received) = mpsc::unbounded_channel();
    let api = RuntimeApi { responses };
    let runtime = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, runtime).await });

    let bootstrap = env!("CARGO_BIN_EXE_bootstrap");
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(bootstrap)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("_HANDLER", "api")
            .env("AWS_LAMBDA_FUNCTION_NAME", "api")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("STRATUS_AWS_LOG", "warn")
            .env("STRATUS_AWS_TABLE_BLOG", &table)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the bootstrap");
        let (answered, body) = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("a response")
            .expect("open");
        assert!(body.contains("\"statusCode\":200"), "the first response: {body}");
        times.push(answered - started);
        child.kill().await.expect("stop the bootstrap");
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bootstrap init to first response (api, GET /v1/posts, {RUNS} cold starts): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
    let stripped = std::env::temp_dir().join(format!("bootstrap-stripped-{}", std::process::id()));
    let status = std::process::Command::new("strip").arg("-o").arg(&stripped).arg(bootstrap).status();
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    match status {
        Ok(status) if status.success() => {
            println!(
                "bootstrap size: {:.1} MB as built, {:.1} MB stripped",
                size(bootstrap.as_ref()),
                size(&stripped)
            );
            let _ = std::fs::remove_file(&stripped);
        }
        _ => println!("bootstrap size: {:.1} MB as built (no strip here)", size(bootstrap.as_ref())),
    }
}
