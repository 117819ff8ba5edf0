//! `/v1/ws` with a real WebSocket client: authenticated on connect, a user's todo changes
//! pushed to all their connections and no one else's, posts to a connection, and the limits.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::TestApp;
use crate::todos::{User, create, user};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn url(app: &TestApp, query: &str) -> String {
    format!("ws://{}/v1/ws{query}", app.base.trim_start_matches("http://"))
}

async fn try_connect(app: &TestApp, token: &str) -> Result<Socket, WsError> {
    let mut request = url(app, "").into_client_request().expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", format!("bearer, {token}").parse().expect("header"));
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
    Ok(socket)
}

/// Connects and reads the greeting; returns the socket and its connection id.
async fn connect(app: &TestApp, user: &User) -> (Socket, String) {
    let mut socket = try_connect(app, &user.token).await.expect("connect");
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "connected");
    (socket, hello["connection_id"].as_str().expect("id").to_owned())
}

/// The next text message, as JSON (pings are answered by the client library).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.expect("a message").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn status_of(error: WsError) -> u16 {
    match error {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("not refused over HTTP: {other}"),
    }
}

#[tokio::test]
async fn a_change_reaches_every_connection_of_its_owner_and_no_one_elses() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let (mut phone, _) = connect(&app, &alice).await;
    let (mut tablet, _) = connect(&app, &alice).await;
    let (mut bobs, _) = connect(&app, &bob).await;

    // Written from the phone's API call; the tablet hears of it too.
    let todo = create(&app, &alice, json!({"title": "from the phone"})).await;
    for socket in [&mut phone, &mut tablet] {
        let message = next_json(socket).await;
        assert_eq!((message["type"].clone(), message["event"].clone()), (json!("todo"), json!("INSERT")));
        assert_eq!(message["todo"], todo);
    }
    // Bob's first message is his own change, so Alice's never reached him.
    let own = create(&app, &bob, json!({"title": "bob's"})).await;
    assert_eq!(next_json(&mut bobs).await["todo"], own);

    // Whoever writes: a change made to the table itself (the CLI, say) is pushed the same way.
    let path = format!("/v1/todos/{}", todo["id"].as_str().expect("id"));
    let deleted = app.http.delete(format!("{}{path}", app.base)).bearer_auth(&alice.token).send();
    assert_eq!(deleted.await.expect("delete").status(), 204);
    let removal = next_json(&mut tablet).await;
    assert_eq!(
        (removal["event"].clone(), removal["id"].clone(), removal["todo"].clone()),
        (json!("REMOVE"), todo["id"].clone(), Value::Null)
    );
    app.stop().await;
}

#[tokio::test]
async fn connecting_takes_a_valid_access_token() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let anonymous = tokio_tungstenite::connect_async(url(&app, "")).await.expect_err("refused");
    assert_eq!(status_of(anonymous), 401);
    assert_eq!(status_of(try_connect(&app, &format!("{}x", alice.token)).await.expect_err("refused")), 401);
    assert_eq!(status_of(try_connect(&app, &alice.id_token).await.expect_err("refused")), 401, "an ID token");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(url(&app, &format!("?access_token={}", alice.token)))
            .await
            .expect("the query works for clients without subprotocols");
    assert_eq!(next_json(&mut socket).await["type"], "connected");
    app.stop().await;
}

#[tokio::test]
async fn functions_post_to_a_connection_until_it_is_gone() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let (mut socket, id) = connect(&app, &alice).await;
    let connections = std::sync::Arc::clone(&app.connections);
    connections.post(&id, json!({"hello": "from a function"}).to_string()).expect("posted");
    assert_eq!(next_json(&mut socket).await, json!({"hello": "from a function"}));

    socket.close(None).await.expect("close");
    while socket.next().await.is_some() {}
    // The server notices the close when it reads it; a post after that is Gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let gone = loop {
        match connections.post(&id, "late".into()) {
            Err(error) => break error,
            Ok(()) if std::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Ok(()) => panic!("the closed connection is still registered"),
        }
    };
    assert_eq!(gone, stratus::services::gateway::PostError::Gone);
    app.stop().await;
}

#[tokio::test]
async fn frames_connections_and_silence_are_bounded() {
    let app = TestApp::spawn_with(
        |config| {
            config.gateway.websocket.connections_per_user = 1;
            config.gateway.websocket.idle_timeout = std::time::Duration::from_millis(300);
            config.gateway.websocket.ping_interval = std::time::Duration::from_secs(3600);
        },
        |_| {},
    )
    .await;
    let alice = user(&app, "alice").await;
    let (mut socket, _) = connect(&app, &alice).await;
    assert_eq!(
        status_of(try_connect(&app, &alice.token).await.expect_err("refused")),
        429,
        "one per user here"
    );

    socket.send(Message::Text("x".repeat(40 * 1024).into())).await.expect("send");
    let closed = loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert_eq!(closed.map(|frame| u16::from(frame.code)), Some(1009), "message too big");

    // A connection that says nothing is closed after the idle timeout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (mut quiet, _) = loop {
        match try_connect(&app, &alice.token).await {
            Ok(mut socket) => {
                let hello = next_json(&mut socket).await;
                break (socket, hello);
            }
            // The server may not have dropped the first connection yet.
            Err(_) if std::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(error) => panic!("the closed connection still counts: {error}"),
        }
    };
    let frame = loop {
        if let Message::Close(frame) = quiet.next().await.expect("a frame").expect("frame") {
            break frame.expect("a close frame");
        }
    };
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1000, "idle"));
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_blocks_no_one() {
    let app = TestApp::spawn_with(|config| config.gateway.websocket.queue = 4, |_| {}).await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let (_stale, _) = connect(&app, &alice).await;
    let (mut reader, bobs_id) = connect(&app, &bob).await;
    let alices = crate::gateway::sub_of(&app, "alice").await;
    // Far more than the queue and the socket buffers hold: pushing never waits for the client.
    let started = std::time::Instant::now();
    let large = "x".repeat(30 * 1024);
    for _ in 0..500 {
        app.connections.push(&alices, &large);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "pushing waited: {:?}", started.elapsed());
    app.connections.post(&bobs_id, json!({"still": "served"}).to_string()).expect("bob is connected");
    assert_eq!(next_json(&mut reader).await, json!({"still": "served"}));
    app.stop().await;
}
