//! Subscribers and their welcome email, through HTTP and the outbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::blog::Blog;
use crate::support::{SmtpSink, TestApp};

/// Welcome emails in the outbox: recipient → how many, and the raw messages.
fn welcomes(blog: &Blog) -> (BTreeMap<String, usize>, Vec<String>) {
    welcomes_of(&blog.app)
}

fn welcomes_of(app: &TestApp) -> (BTreeMap<String, usize>, Vec<String>) {
    let outbox = app.platform.outbox().expect("outbox");
    let mut counts = BTreeMap::new();
    let mut raw = Vec::new();
    for entry in outbox.list().expect("list") {
        if entry.subject.starts_with("Welcome to") {
            *counts.entry(entry.to.clone()).or_insert(0) += 1;
            raw.push(outbox.read(&entry.id).expect("read"));
        }
    }
    (counts, raw)
}

async fn subscribe(blog: &Blog, email: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    blog.send(blog.app.http.post(blog.url("/v1/subscribers")).json(&json!({ "email": email }))).await
}

/// The unsubscribe link of a raw message (quoted-printable soft breaks undone).
fn unsubscribe_link(raw: &str) -> String {
    let unfolded = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = unfolded.find("List-Unsubscribe: <").expect("List-Unsubscribe header") + 19;
    let end = start + unfolded[start..].find('>').expect("closing bracket");
    unfolded[start..end].to_owned()
}

fn relative(link: &str) -> String {
    link.split_once("/v1/").map(|(_, rest)| format!("/v1/{rest}")).expect("an API link")
}

#[tokio::test]
async fn concurrent_subscriptions_send_exactly_one_welcome_per_address() {
    let blog = Blog::start_with(|config| config.blog.subscribe_per_address_per_minute = 10_000).await;
    blog.publish_new("latest", "2026-11-20T09:00:00Z", &[]).await;
    // 150 addresses; 50 of them subscribe a second time, differently spelled.
    let emails: Vec<String> = (0..200)
        .map(|n| {
            if n < 150 { format!("reader{n}@example.com") } else { format!(" Reader{}@EXAMPLE.com", n - 150) }
        })
        .collect();
    let requests = emails.iter().map(|email| subscribe(&blog, email));
    for (status, _, body) in futures::future::join_all(requests).await {
        assert_eq!(status, 202, "{body}");
    }
    blog.app.drain().await;
    let (counts, raw) = welcomes(&blog);
    assert_eq!(counts.len(), 150, "one welcome per distinct address");
    assert!(counts.values().all(|&count| count == 1), "never two: {counts:?}");

    let message = &raw[0];
    assert!(message.contains("Content-Type: multipart/alternative"), "text and HTML parts");
    assert!(message.contains("Stratus Blog"), "the blog's name");
    assert!(message.contains("Post latest"), "the latest posts");
    assert!(message.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(unsubscribe_link(message).contains("/v1/subscribers/unsubscribe?token="));

    // Subscribing again later creates nothing and sends nothing.
    assert_eq!(subscribe(&blog, "reader7@example.com").await.0, 202);
    blog.app.drain().await;
    assert_eq!(welcomes(&blog).0.len(), 150);
    blog.app.stop().await;
}

#[tokio::test]
async fn unsubscribe_links_work_once_signed_and_unexpired() {
    let blog = Blog::start().await;
    for email in ["ada@example.com", "bob@example.com"] {
        assert_eq!(subscribe(&blog, email).await.0, 202);
    }
    blog.app.drain().await;
    let (_, raw) = welcomes(&blog);
    let link_of = |address: &str| {
        let message = raw.iter().find(|m| m.contains(&format!("To: {address}"))).expect("welcome");
        relative(&unsubscribe_link(message))
    };
    let (ada, bob) = (link_of("ada@example.com"), link_of("bob@example.com"));

    // Tampered: another address's claims under Ada's signature, or a flipped signature byte.
    let (_, token) = ada.split_once("token=").expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    let (_, bob_token) = bob.split_once("token=").expect("token");
    let forged = format!("{}.{}.{}", parts[0], bob_token.split('.').nth(1).expect("claims"), parts[2]);
    let mut flipped = token.to_owned();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    for bad in [forged, flipped, "not-a-token".to_owned(), String::new()] {
        let (status, headers, body) =
            blog.send(blog.app.http.get(blog.url(&format!("/v1/subscribers/unsubscribe?token={bad}")))).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert!(body.as_str().expect("page").contains("not valid"));
    }

    let (status, headers, body) = blog.send(blog.app.http.get(blog.url(&ada))).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"text/html; charset=utf-8".parse().expect("value"))
    );
    assert!(body.as_str().expect("page").contains("ada@example.com will receive no more emails"));
    assert_eq!(blog.send(blog.app.http.get(blog.url(&ada))).await.0, 200, "a second click says the same");

    let (status, _, list) =
        blog.send(blog.app.http.get(blog.url("/v1/subscribers")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 200);
    let emails: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["email"].as_str().expect("email"))
        .collect();
    assert_eq!(emails, ["bob@example.com"], "only Ada is gone");

    // Expired: a year and a day later Bob's link no longer works, and Bob stays.
    blog.app.clock.advance(Duration::from_secs(366 * 24 * 3600));
    assert_eq!(blog.send(blog.app.http.post(blog.url(&bob))).await.0, 400, "one-click with an expired token");
    // The author's access token of a year ago has expired too: a new sign-in.
    let signed_in = blog.app.sign_in("writer", "Correct-Horse-9").await;
    let author = signed_in["AuthenticationResult"]["AccessToken"].as_str().expect("token");
    let (_, _, list) = blog.send(blog.app.http.get(blog.url("/v1/subscribers")).bearer_auth(author)).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    blog.app.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_change_nothing() {
    let blog = Blog::start_with(|config| config.blog.subscribe_per_address_per_minute = 20).await;
    let too_long = format!("{}@example.com", "a".repeat(250));
    for (body, expected) in [
        (json!({"email": "not-an-address"}), 400),
        (json!({"email": too_long}), 400),
        (json!({"email": ""}), 400),
        (json!({}), 400),
        (json!({"email": 42}), 400),
    ] {
        let (status, headers, problem) =
            blog.send(blog.app.http.post(blog.url("/v1/subscribers")).json(&body)).await;
        assert_eq!(status, expected, "{body}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let text = blog
        .app
        .http
        .post(blog.url("/v1/subscribers"))
        .body("ada@example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(text.status(), 415);
    let huge = blog
        .app
        .http
        .post(blog.url("/v1/subscribers"))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(huge.status(), 413);
    blog.app.drain().await;
    assert!(welcomes(&blog).0.is_empty());
    let (_, _, list) =
        blog.send(blog.app.http.get(blog.url("/v1/subscribers")).bearer_auth(&blog.author)).await;
    assert_eq!(list["items"], json!([]), "nothing stored");
    blog.app.stop().await;
}

#[tokio::test]
async fn the_site_form_subscribes_with_pages_and_is_throttled_per_address() {
    let blog = Blog::start_with(|config| config.blog.subscribe_per_address_per_minute = 3).await;
    let form = |email: &str| {
        blog.app
            .http
            .post(blog.url("/v1/subscribers"))
            .form(&[("email", email)])
            .header("origin", "https://blog.example.org")
    };
    let response = form("ada@example.com").send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*", "the form may live on another origin");
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    assert!(response.text().await.expect("page").contains("Thank you for subscribing"));
    let refused = form("nobody").send().await.expect("request");
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.expect("page").contains("not a valid email address"), "a page, not JSON");
    assert_eq!(form("bob@example.com").send().await.expect("request").status(), 200);
    let throttled = form("carol@example.com").send().await.expect("request");
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    blog.app.drain().await;
    let (counts, _) = welcomes(&blog);
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["ada@example.com", "bob@example.com"]);
    blog.app.stop().await;
}

#[tokio::test]
async fn authors_list_and_export_subscribers_others_cannot() {
    let blog = Blog::start_with(|config| config.blog.subscribe_per_address_per_minute = 1000).await;
    for n in 0..7 {
        assert_eq!(subscribe(&blog, &format!("reader{n}@example.com")).await.0, 202);
    }
    let list = |token: Option<&str>, query: &str| {
        let request = blog.app.http.get(blog.url(&format!("/v1/subscribers{query}")));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    assert_eq!(blog.send(list(None, "")).await.0, 401);
    assert_eq!(blog.send(list(Some(&blog.reader), "")).await.0, 403);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("?limit=3&cursor={cursor}"),
            None => "?limit=3".to_owned(),
        };
        let (status, _, page) = blog.send(list(Some(&blog.author), &query)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|s| s["email"].as_str().expect("email").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7).map(|n| format!("reader{n}@example.com")).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "every subscriber once over the pages");

    let export = list(Some(&blog.author), "?format=csv").send().await.expect("request");
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = export.text().await.expect("csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("email,subscribed_at"));
    assert_eq!(lines.count(), 7);
    assert_eq!(blog.send(list(Some(&blog.author), "?format=xml")).await.0, 400);
    blog.app.stop().await;
}

fn through_smtp(config: &mut stratus::config::Config, port: u16) {
    config.mail.transport = stratus::ports::mail::MailTransport::Smtp;
    config.mail.smtp.host = "127.0.0.1".into();
    config.mail.smtp.port = port;
    config.mail.smtp.tls = stratus::ports::mail::SmtpTls::None;
}

#[tokio::test]
async fn smtp_failures_are_retried_then_dead_lettered_and_never_sent_twice() {
    // A relay that refuses the first two attempts: the third delivers, once.
    let sink = SmtpSink::start(2).await;
    let app = TestApp::spawn_with(|config| through_smtp(config, sink.port), |_| {}).await;
    let subscribe = |email: &'static str| {
        app.http.post(format!("{}/v1/subscribers", app.base)).json(&json!({ "email": email })).send()
    };
    assert_eq!(subscribe("ada@example.com").await.expect("request").status(), 202);
    app.drain().await;
    let received = sink.received.all();
    assert_eq!(received.len(), 1, "delivered once after retries");
    assert!(received[0].contains("To: ada@example.com") && received[0].contains("Welcome to"));
    assert_eq!(*sink.refused.lock().expect("refusals"), 2);
    assert!(app.platform.stream.dead_letters(Some("welcome-email")).expect("letters").is_empty());
    app.stop().await;

    // A relay down for every attempt (3 in tests): the record waits in the dead-letter queue,
    // and a redrive once the relay answers delivers it.
    let sink = SmtpSink::start(3).await;
    let app = TestApp::spawn_with(|config| through_smtp(config, sink.port), |_| {}).await;
    let subscribe = |email: &'static str| {
        app.http.post(format!("{}/v1/subscribers", app.base)).json(&json!({ "email": email })).send()
    };
    assert_eq!(subscribe("bob@example.com").await.expect("request").status(), 202);
    app.drain().await;
    assert!(sink.received.all().is_empty());
    let letters = app.platform.stream.dead_letters(Some("welcome-email")).expect("letters");
    assert_eq!(letters.len(), 1, "not dropped: dead-lettered");
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(app.platform.stream.redrive("welcome-email", None).expect("redrive"), 1);
    app.drain().await;
    assert_eq!(sink.received.all().len(), 1);
    assert_eq!(app.platform.stream.redrive("welcome-email", None).expect("nothing left"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_redelivered_after_a_crash_sends_no_second_welcome() {
    let data = tempfile::TempDir::new().expect("data directory");
    let here = |config: &mut stratus::config::Config| {
        config.data_dir = data.path().to_owned();
        config.blog.subscribe_per_address_per_minute = 1000;
    };
    let app = TestApp::spawn_with(here, |_| {}).await;
    let subscriptions = (0..40).map(|n| {
        app.http
            .post(format!("{}/v1/subscribers", app.base))
            .json(&json!({ "email": format!("r{n}@example.com") }))
            .send()
    });
    for response in futures::future::join_all(subscriptions).await {
        assert_eq!(response.expect("request").status(), 202);
    }
    app.drain().await;
    let database = app.platform.stage_dir().join("stratus.db");
    app.stop().await;

    // The crash: every welcome went out but the checkpoint never reached the disk, so the
    // stream delivers the whole batch again when the server comes back.
    let rewind = |checkpoint: i64| {
        let db = rusqlite::Connection::open(&database).expect("database");
        db.execute("UPDATE stream_consumers SET checkpoint = ?1 WHERE name = 'welcome-email'", [checkpoint])
            .expect("rewind")
    };
    assert_eq!(rewind(0), 1);
    let app = TestApp::spawn_with(here, |_| {}).await;
    app.drain().await;
    let (counts, _) = welcomes_of(&app);
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&count| count == 1), "redelivery sent nothing twice: {counts:?}");
    let status = app.platform.stream.consumers().expect("status");
    let welcome = status.iter().find(|consumer| consumer.name == "welcome-email").expect("consumer");
    assert!(welcome.checkpoint > 0 && welcome.pending == 0, "the batch was processed again: {welcome:?}");
    app.stop().await;
}
