//! Limits enforced before anything is buffered: connections per client and in all, and request
//! bodies refused while they stream, in each endpoint's protocol.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::raw::{connect, connect_from, dribble, head, read_response};
use crate::support::TestApp;
use crate::{address, author_token, metric, metric_in, one_at_a_time, short_clocks};

const COGNITO_LIMIT: usize = 64 * 1024;

/// Sends `body_bytes` of a chunked body as fast as the server takes it, and returns the
/// server's answer and how many bytes the server read from the connection meanwhile.
async fn chunked_upload(
    app: &TestApp,
    request_head: Vec<u8>,
    body_bytes: usize,
) -> (crate::raw::RawResponse, f64) {
    let before = metric(app, "stratus_http_received_bytes_total", "").await;
    let (mut reader, mut writer) = connect(address(app)).await.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(&request_head).await?;
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "a".repeat(16 * 1024));
        for _ in 0..body_bytes / (16 * 1024) {
            writer.write_all(chunk.as_bytes()).await?;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        std::io::Result::Ok(writer)
    });
    let response = read_response(&mut reader).await.expect("an answer before the body is sent");
    // The server hangs up; the sender's writes then fail.
    assert!(crate::raw::time_to_close(&mut reader, Duration::from_secs(5)).await.is_some());
    let _ = sender.await;
    let after = metric(app, "stratus_http_received_bytes_total", "").await;
    (response, after - before)
}

fn cognito_head(target: &str, framing: &str) -> Vec<u8> {
    head(
        "POST",
        "/",
        &[
            "content-type: application/x-amz-json-1.1",
            &format!("x-amz-target: AWSCognitoIdentityProviderService.{target}"),
            framing,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_cognito_body_is_refused_after_reading_at_most_its_limit_and_one_chunk() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn().await;

    // Chunked: no length is declared, so the endpoint reads until the limit is passed.
    let (response, read) =
        chunked_upload(&app, cognito_head("SignUp", "transfer-encoding: chunked"), 1_900_000).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.header("x-amzn-errortype"), Some("RequestEntityTooLargeException"));
    assert_eq!(response.header("content-type"), Some("application/x-amz-json-1.1"));
    let body = response.json();
    assert_eq!(body["__type"], "RequestEntityTooLargeException", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("65536")), "{body}");
    let most = (COGNITO_LIMIT + 64 * 1024 + 1024) as f64;
    assert!(read <= most, "read {read} bytes of a 1.9 MB body; at most {most}");

    // A declared length over the limit is refused before the body is read.
    let mut declared = connect(address(&app)).await;
    declared.write_all(&cognito_head("SignUp", "content-length: 1900000")).await.expect("head");
    let response = read_response(&mut declared).await.expect("response");
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["__type"], "RequestEntityTooLargeException");
    app.stop().await;
}

/// A client that writes its whole request before it reads (most do) must still get the answer
/// to a body refused up front: the server reads and discards the rest instead of closing on it,
/// which would reset the connection and lose the answer — but only for `linger_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_drained_so_the_client_reads_the_answer_but_not_for_longer_than_the_linger() {
    let _turn = one_at_a_time().await;
    let app =
        TestApp::spawn_with(|config| config.server.linger_timeout = Duration::from_secs(1), |_| {}).await;
    let body_bytes = 8 * 1024 * 1024;
    let mut stream = connect(address(&app)).await;
    let declared = format!("content-length: {body_bytes}");
    stream.write_all(&cognito_head("SignUp", &declared)).await.expect("head");
    stream.write_all(&vec![b'a'; body_bytes]).await.expect("the whole body is taken, not reset");
    let response = read_response(&mut stream).await.expect("the answer survives");
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["__type"], "RequestEntityTooLargeException");

    // A client that never stops sending is cut off once the linger is over: its writes fail
    // when the server closes. What was drained is counted apart from what was received.
    let (before_discarded, before_received) = (
        metric(&app, "stratus_http_discarded_bytes_total", "").await,
        metric(&app, "stratus_http_received_bytes_total", "").await,
    );
    let (mut reader, mut writer) = connect(address(&app)).await.into_split();
    writer.write_all(&cognito_head("SignUp", "content-length: 100000000000")).await.expect("head");
    let endless = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        while writer.write_all(&chunk).await.is_ok() {}
    });
    assert_eq!(read_response(&mut reader).await.expect("response").status, 413);
    let answered = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), endless).await.expect("cut off").expect("the writer ends");
    let lingered = answered.elapsed();
    assert!(lingered >= Duration::from_millis(900), "lingered only {lingered:?}");
    assert!(lingered < Duration::from_secs(4), "lingered {lingered:?}");
    let discarded = metric(&app, "stratus_http_discarded_bytes_total", "").await - before_discarded;
    let received = metric(&app, "stratus_http_received_bytes_total", "").await - before_received;
    assert!(discarded >= 1024.0 * 1024.0, "discarded {discarded} bytes in {lingered:?}");
    assert!(received < 256.0 * 1024.0, "received {received} bytes");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_answer_in_each_protocols_shape() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(
        |config| {
            short_clocks(config);
            config.media.max_upload_bytes = 64 * 1024;
        },
        |_| {},
    )
    .await;
    let token = author_token(&app).await;
    let url = |path: &str| format!("{}{path}", app.base);
    let problem = |status: u16, response: &(u16, String, Value)| {
        assert_eq!(response.0, status, "{response:?}");
        assert_eq!(response.1, "application/problem+json", "{response:?}");
        assert_eq!(response.2["status"], status, "{response:?}");
        assert!(response.2["detail"].is_string(), "{response:?}");
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().expect("ascii").to_owned());
        let text = response.text().await.expect("body");
        (status, content_type.unwrap_or_default(), serde_json::from_str(&text).unwrap_or(Value::Null))
    };

    // The posts API (1 MiB), declared and streamed.
    let big = vec![b' '; 2 * 1024 * 1024];
    let declared = send(
        app.http
            .post(url("/v1/posts"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    problem(413, &declared);
    let frames: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> = big
        .chunks(64 * 1024)
        .map(|chunk| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(chunk))))
        .collect();
    let unsized_body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let streamed = send(
        app.http
            .post(url("/v1/posts"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap(unsized_body)),
    )
    .await;
    problem(413, &streamed);
    // Subscriptions (4 KiB).
    let subscribe = send(
        app.http
            .post(url("/v1/subscribers"))
            .header("content-type", "application/json")
            .body(vec![b' '; 8 * 1024]),
    )
    .await;
    problem(413, &subscribe);
    // Photo uploads (64 KiB here), multipart and presigned.
    let photo = reqwest::multipart::Part::bytes(vec![0xFFu8; 200 * 1024]).file_name("big.jpg");
    let form = reqwest::multipart::Form::new().part("file", photo);
    let upload = send(app.http.post(url("/v1/photos")).bearer_auth(&token).multipart(form)).await;
    problem(413, &upload);
    let link: Value = app
        .http
        .post(url("/v1/photos/uploads"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("presign")
        .json()
        .await
        .expect("json");
    let direct =
        send(app.http.put(link["upload_url"].as_str().expect("url")).body(vec![0xFFu8; 100 * 1024])).await;
    problem(413, &direct);

    // Too slow: 408 as a problem on the REST API, and in Cognito's shape on `POST /`.
    let server = address(&app);
    let slow = |request_head: Vec<u8>| async move {
        let (mut reader, mut writer) = connect(server).await.into_split();
        writer.write_all(&request_head).await.expect("head");
        let trickle = tokio::spawn(dribble(writer, vec![b' '; 100], Duration::from_millis(100)));
        let response = read_response(&mut reader).await.expect("response");
        trickle.abort();
        response
    };
    let rest =
        slow(head("POST", "/v1/subscribers", &["content-type: application/json", "content-length: 100"]))
            .await;
    assert_eq!((rest.status, rest.header("content-type")), (408, Some("application/problem+json")));
    let cognito = slow(cognito_head("SignUp", "content-length: 100")).await;
    assert_eq!(cognito.status, 408);
    assert_eq!(cognito.json()["__type"], "RequestTimeoutException");
    assert_eq!(cognito.header("x-amzn-errortype"), Some("RequestTimeoutException"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_a_clients_share_get_429_and_past_the_total_503() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(
        |config| {
            config.server.max_connections = 5;
            config.server.max_connections_per_address = 3;
        },
        |_| {},
    )
    .await;
    let server = address(&app);
    let from = |last: u8| Ipv4Addr::new(127, 0, 2, last);

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(server, from(1)).await.expect("connect"));
    }
    let mut fourth = connect_from(server, from(1)).await.expect("connect");
    let refused = read_response(&mut fourth).await.expect("an answer");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.json()["status"], 429);

    // Another client still gets in and is served.
    let mut other = connect_from(server, from(2)).await.expect("connect");
    other.write_all(&head("GET", "/healthz", &[])).await.expect("request");
    assert_eq!(read_response(&mut other).await.expect("response").status, 200);
    held.push(connect_from(server, from(3)).await.expect("connect"));
    // Five are open: the next client, whoever it is, is refused for the total.
    let mut sixth = connect_from(server, from(4)).await.expect("connect");
    let busy = read_response(&mut sixth).await.expect("an answer");
    assert_eq!(busy.status, 503);
    assert_eq!(busy.json()["status"], 503);

    // The server is full, so the counters are read over a connection it already holds.
    other.write_all(&head("GET", "/metrics", &[])).await.expect("request");
    let metrics = read_response(&mut other).await.expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let refusals = (
        metric_in(&text, "stratus_http_connections_refused_total", r#"reason="per_address""#),
        metric_in(&text, "stratus_http_connections_refused_total", r#"reason="total""#),
    );
    drop(held);
    assert_eq!(refusals.0, 1.0);
    assert_eq!(refusals.1, 1.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_past_16_kib_gets_431() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn().await;
    let mut socket = connect(address(&app)).await;
    let cookie = format!("cookie: c={}", "x".repeat(20 * 1024));
    socket.write_all(&head("GET", "/healthz", &[&cookie])).await.expect("head");
    assert_eq!(read_response(&mut socket).await.expect("response").status, 431);
    let response =
        app.http.get(format!("{}/healthz", app.base)).header("cookie", "c=x".repeat(1000)).send().await;
    assert_eq!(response.expect("request").status(), 200, "a 3 KB cookie is fine");
    app.stop().await;
}
