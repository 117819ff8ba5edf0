//! Figures for the todos' push: a todo created through the API, until the same user's other
//! WebSocket connection receives it (the write, its stream record, the push), at 100 changes a
//! second. The HTTP figures against PocketBase are `bench/todos.sh`. Run with
//! `cargo bench -p stratus --bench todos`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use stratus::app::Application;
use stratus::config::Config;
use stratus::services::cognito::user_pool::AdminCreateUser;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const PASSWORD: &str = "Correct-Horse-9";
const CHANGES: usize = 1_000;
const PER_SECOND: u64 = 100;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), stage: "bench".into(), ..Config::default() };
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.log.filter = "warn".into();
    let app = Application::build(config).await.expect("app");
    let pool = Arc::clone(app.identity().pool_named("default").expect("pool"));
    let client_id = pool.clients()[0].1.clone();
    let user = AdminCreateUser {
        username: "bench".into(),
        attributes: [("email".to_owned(), "bench@example.com".to_owned())].into_iter().collect(),
        temporary_password: Some(PASSWORD.into()),
    };
    pool.admin_create_user(user).await.expect("user");
    pool.admin_set_user_password("bench", PASSWORD, true).await.expect("password");
    let token = match pool.password_auth(&client_id, "bench", PASSWORD).await.expect("sign in") {
        stratus::services::cognito::user_pool::AuthOutcome::Authenticated(tokens) => tokens.access_token,
        other => panic!("unexpected challenge {other:?}"),
    };
    let address = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    let mut request = format!("ws://{address}/v1/ws").into_client_request().expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", format!("bearer, {token}").parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    next_text(&mut socket).await; // the greeting
    let http = reqwest::Client::new();
    let url = format!("http://{address}/v1/todos");
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND));
    let mut latencies = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        ticks.tick().await;
        let started = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "title": format!("change {n}") }))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let message = next_text(&mut socket).await;
        assert!(message.contains(&format!("change {n}")), "{message}");
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!("todos: create through the API → the user's WebSocket, {CHANGES} changes at {PER_SECOND}/s");
    println!(
        "  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (goal p99 ≤ 50 ms)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().expect("latencies"))
    );
    let _ = stop.send(());
    server.await.expect("server").expect("clean stop");
}

async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> String {
    loop {
        if let Message::Text(text) = socket.next().await.expect("message").expect("frame") {
            return text.to_string();
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
