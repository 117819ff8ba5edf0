//! The listener's clocks: every slow connection is closed within its configured timeout, and a
//! slow but steady client is not.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::AsyncWriteExt as _;

use crate::raw::{connect, dribble, head, read_response, time_to_close};
use crate::support::TestApp;
use crate::{address, author_token, metric, one_at_a_time, short_clocks};

fn within(elapsed: Option<Duration>, low_ms: u64, high_ms: u64) -> Duration {
    let elapsed = elapsed.expect("the server closed the connection");
    assert!(
        (Duration::from_millis(low_ms)..=Duration::from_millis(high_ms)).contains(&elapsed),
        "closed after {elapsed:?}, expected {low_ms}..{high_ms} ms"
    );
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_heads_are_cut_off_at_the_header_timeout() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(short_clocks, |_| {}).await;
    let server = address(&app);

    let mut silent = connect(server).await;
    within(time_to_close(&mut silent, Duration::from_secs(5)).await, 900, 2_000);

    let (mut reader, writer) = connect(server).await.into_split();
    let trickle = tokio::spawn(dribble(
        writer,
        b"GET /healthz HTTP/1.1\r\nhost: stratus.test\r\nx-a: b".to_vec(),
        Duration::from_millis(50),
    ));
    within(time_to_close(&mut reader, Duration::from_secs(5)).await, 900, 2_000);
    trickle.abort();

    assert_eq!(metric(&app, "stratus_http_timeouts_total", r#"kind="header""#).await, 2.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_waits_the_idle_timeout_and_its_next_head_the_header_timeout() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(short_clocks, |_| {}).await;
    let server = address(&app);

    // Idle after a response: closed after idle_timeout (3 s), well past header_timeout (1 s).
    let mut idle = connect(server).await;
    idle.write_all(&head("GET", "/healthz", &[])).await.expect("request");
    assert_eq!(read_response(&mut idle).await.expect("response").status, 200);
    within(time_to_close(&mut idle, Duration::from_secs(6)).await, 2_900, 4_000);

    // A next head that begins after a while must then finish within header_timeout of its
    // first byte.
    let mut next = connect(server).await;
    next.write_all(&head("GET", "/healthz", &[])).await.expect("request");
    assert_eq!(read_response(&mut next).await.expect("response").status, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    next.write_all(b"G").await.expect("first byte of the next head");
    within(time_to_close(&mut next, Duration::from_secs(5)).await, 900, 1_600);

    assert_eq!(metric(&app, "stratus_http_timeouts_total", r#"kind="idle""#).await, 1.0);
    assert_eq!(metric(&app, "stratus_http_timeouts_total", r#"kind="header""#).await, 1.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_minimum_rate_is_answered_408_and_a_steady_one_is_not_cut_off() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(short_clocks, |_| {}).await;
    let server = address(&app);
    let body = format!(r#"{{"email": "steady@example.com", "padding": "{}"}}"#, "x".repeat(2_900));
    let request = |length: usize| {
        head(
            "POST",
            "/v1/subscribers",
            &["content-type: application/json", &format!("content-length: {length}")],
        )
    };

    // 20 bytes a second against 1 KiB/s: out of time after about 1 s.
    let (mut reader, mut writer) = connect(server).await.into_split();
    let started = Instant::now();
    writer.write_all(&request(body.len())).await.expect("head");
    let trickle = tokio::spawn(dribble(writer, body.clone().into_bytes(), Duration::from_millis(50)));
    let response = read_response(&mut reader).await.expect("response");
    within(Some(started.elapsed()), 900, 1_600);
    assert_eq!(response.status, 408);
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
    assert_eq!(response.json()["status"], 408);
    assert!(time_to_close(&mut reader, Duration::from_secs(2)).await.is_some(), "then closed");
    trickle.abort();

    // 3 KB at about 2 KiB/s takes 1.5 s, longer than body_timeout, and is accepted: each KiB
    // delivered earns another second.
    let (mut reader, mut writer) = connect(server).await.into_split();
    writer.write_all(&request(body.len())).await.expect("head");
    for piece in body.as_bytes().chunks(300) {
        writer.write_all(piece).await.expect("piece");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let response = read_response(&mut reader).await.expect("response");
    assert_eq!(response.status, 202, "{}", String::from_utf8_lossy(&response.body));

    assert_eq!(metric(&app, "stratus_http_timeouts_total", r#"kind="body""#).await, 1.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_photo_upload_is_answered_408_by_the_streaming_endpoint() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(short_clocks, |_| {}).await;
    let token = author_token(&app).await;
    let (mut reader, mut writer) = connect(address(&app)).await.into_split();
    let boundary = "stratus-boundary";
    let body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
         content-type: image/jpeg\r\n\r\n{}\r\n--{boundary}--\r\n",
        "j".repeat(4_000)
    );
    let authorization = format!("authorization: Bearer {token}");
    let content_type = format!("content-type: multipart/form-data; boundary={boundary}");
    let length = format!("content-length: {}", body.len());
    writer
        .write_all(&head("POST", "/v1/photos", &[&authorization, &content_type, &length]))
        .await
        .expect("head");
    let trickle = tokio::spawn(dribble(writer, body.into_bytes(), Duration::from_millis(20)));
    let response = read_response(&mut reader).await.expect("response");
    assert_eq!(response.status, 408, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
    trickle.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_response_is_dropped_after_the_send_timeout() {
    let _turn = one_at_a_time().await;
    let large = || async { vec![b'x'; 32 * 1024 * 1024] };
    let app =
        TestApp::spawn_with(short_clocks, |app| app.mount(Router::new().route("/test/large", get(large))))
            .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stalled = socket.connect(address(&app)).await.expect("connect");
    let asked = Instant::now();
    stalled.write_all(&head("GET", "/test/large", &[])).await.expect("request");

    // The client reads nothing; the server's write stops making progress and is given up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "stratus_http_timeouts_total", r#"kind="send""#).await < 1.0 {
        assert!(Instant::now() < deadline, "the stalled response was never given up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(asked.elapsed() >= Duration::from_secs(1), "not before send_timeout");
    assert!(time_to_close(&mut stalled, Duration::from_secs(5)).await.is_some(), "the connection is closed");
    drop(stalled);
    app.stop().await;
}
