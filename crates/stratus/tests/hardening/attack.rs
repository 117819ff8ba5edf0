//! A slow-client attack (slowloris heads and trickling bodies, as `slowhttptest` sends them)
//! while a normal client reads the API and an author publishes a post. The attacker opens a
//! wave of 100 slow-body and 300 slow-header connections, then keeps opening more (80 a second)
//! for the whole run, from 50 loopback addresses, so no per-client limit is what stops it: the
//! listener's clocks must. Without them the connections would pile up past
//! `server.max_connections` and the normal client would be refused.
//!
//! The clients run on a runtime of their own, as they would on another machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::raw::{connect_from, dribble, head, time_to_close};
use crate::support::TestApp;
use crate::{address, author_token, metric, one_at_a_time};

const ATTACK: Duration = Duration::from_secs(10);
const WAVE_BODIES: usize = 100;
const WAVE_HEADS: usize = 300;
/// Opened every 250 ms after the wave: 80 a second.
const MORE_BODIES: usize = 5;
const MORE_HEADS: usize = 15;
const ATTACKER_ADDRESSES: usize = 50;

#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Sends the request line and headers a byte at a time, never finishing.
    Head,
    /// Connects and sends nothing.
    Silent,
    /// Sends a complete head and then its body a byte every 2 s.
    Body,
}

#[derive(Debug, Default)]
struct AttackTally {
    opened: AtomicUsize,
    cut_off: AtomicUsize,
}

/// One attacking connection: open, dribble, and note when the server cuts it off.
async fn slow_connection(server: SocketAddr, source: Ipv4Addr, kind: Slow, tally: Arc<AttackTally>) {
    let Ok(socket) = connect_from(server, source).await else { return };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = socket.into_split();
    let trickle = match kind {
        Slow::Head => {
            tokio::spawn(dribble(writer, head("GET", "/", &["user-agent: slow"]), Duration::from_millis(500)))
        }
        Slow::Silent => tokio::spawn(async move {
            std::future::pending::<()>().await;
            drop(writer);
        }),
        Slow::Body => {
            let request =
                head("POST", "/v1/subscribers", &["content-type: application/json", "content-length: 1000"]);
            if writer.write_all(&request).await.is_err() {
                return;
            }
            tokio::spawn(dribble(writer, vec![b' '; 1000], Duration::from_secs(2)))
        }
    };
    if time_to_close(&mut reader, ATTACK * 2).await.is_some() {
        tally.cut_off.fetch_add(1, Ordering::Relaxed);
    }
    trickle.abort();
}

async fn attack(server: SocketAddr, tally: Arc<AttackTally>, stop: tokio_util::sync::CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    let mut next_source = 0usize;
    let mut open = |kind: Slow, connections: &mut tokio::task::JoinSet<()>| {
        next_source += 1;
        let last = u8::try_from(next_source % ATTACKER_ADDRESSES + 1).expect("small");
        connections.spawn(slow_connection(server, Ipv4Addr::new(127, 0, 1, last), kind, Arc::clone(&tally)));
    };
    for index in 0..WAVE_HEADS {
        // A few of the heads never send a byte.
        open(if index % 15 == 0 { Slow::Silent } else { Slow::Head }, &mut connections);
    }
    for _ in 0..WAVE_BODIES {
        open(Slow::Body, &mut connections);
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        for _ in 0..MORE_HEADS {
            open(Slow::Head, &mut connections);
        }
        for _ in 0..MORE_BODIES {
            open(Slow::Body, &mut connections);
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// A reader's experience of one route: latencies of the successes, and the failures.
#[derive(Debug, Default)]
struct Experience {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Experience {
    fn success_rate(&self) -> f64 {
        let total = self.latencies.len() + self.failures.len();
        self.latencies.len() as f64 / total.max(1) as f64
    }

    fn p99(&mut self) -> Duration {
        self.latencies.sort();
        let index = (self.latencies.len() * 99).div_ceil(100).saturating_sub(1);
        self.latencies.get(index).copied().unwrap_or(Duration::MAX)
    }
}

/// Requests `url` every 50 ms, each on a new connection (a new visitor), until `stop`.
async fn read_repeatedly(
    url: String,
    token: Option<String>,
    stop: tokio_util::sync::CancellationToken,
) -> Experience {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let mut experience = Experience::default();
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = stop.cancelled() => return experience,
            _ = ticks.tick() => {}
        }
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) if response.status() == 200 => match response.bytes().await {
                Ok(_) => experience.latencies.push(started.elapsed()),
                Err(error) => experience.failures.push(format!("body: {error}")),
            },
            Ok(response) => experience.failures.push(format!("status {}", response.status())),
            Err(error) => experience.failures.push(format!("{error}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_slow_client_attack_readers_are_served_fast_and_a_new_post_appears() {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(
        |config| {
            config.server.header_read_timeout = Duration::from_secs(2);
            config.server.idle_timeout = Duration::from_secs(3);
            // Long enough that a server taking a slot before the body arrives would be starved:
            // 20 new slow bodies a second, each held 5 s, are more than its 64 HTTP slots.
            config.server.body_timeout = Duration::from_secs(5);
            config.server.body_min_rate = 1024;
            // A modest connection budget; the attacker opens 1,200 connections in all.
            config.server.max_connections = 1000;
            config.server.max_connections_per_address = 64;
        },
        |_| {},
    )
    .await;
    let token = author_token(&app).await;
    let server = address(&app);
    let first =
        json!({"slug": "before", "title": "Before the attack", "body": "Calm.", "status": "published"});
    let created =
        app.http.post(format!("{}/v1/posts", app.base)).bearer_auth(&token).json(&first).send().await;
    assert_eq!(created.expect("create").status(), 201);
    app.drain().await;

    let clients =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let stop = tokio_util::sync::CancellationToken::new();
    let tally = Arc::new(AttackTally::default());
    let attacker = clients.spawn(attack(server, Arc::clone(&tally), stop.clone()));
    let cached = clients.spawn(read_repeatedly(format!("{}/v1/posts", app.base), None, stop.clone()));
    let uncached = clients.spawn(read_repeatedly(
        format!("{}/v1/posts?limit=5", app.base),
        Some(token.clone()),
        stop.clone(),
    ));

    // Halfway through, an author publishes; the site has the page once the functions are done.
    tokio::time::sleep(ATTACK / 2).await;
    let during = json!({"slug": "during", "title": "Written under fire", "body": "Still here.", "status": "published"});
    let publish =
        clients.spawn({
            let (client, url, token) = (app.http.clone(), format!("{}/v1/posts", app.base), token.clone());
            async move {
                client.post(url).bearer_auth(token).json(&during).send().await.map(|r| r.status().as_u16())
            }
        });
    assert_eq!(publish.await.expect("task").expect("publish"), 201);
    app.drain().await;
    let page = clients.spawn({
        let (client, url) = (app.http.clone(), format!("{}/posts/during/", app.base));
        async move {
            let response = client.get(url).send().await?;
            Ok::<_, reqwest::Error>((response.status().as_u16(), response.text().await?))
        }
    });
    let (status, text) = page.await.expect("task").expect("page");
    assert_eq!(status, 200);
    assert!(text.contains("Written under fire"));

    tokio::time::sleep(ATTACK / 2).await;
    stop.cancel();
    let (mut cached, mut uncached) = (cached.await.expect("reader"), uncached.await.expect("reader"));
    attacker.await.expect("attacker");
    clients.shutdown_background();

    let opened = tally.opened.load(Ordering::Relaxed);
    let cut_off = tally.cut_off.load(Ordering::Relaxed);
    println!(
        "attack: {opened} slow connections opened, {cut_off} cut off by the server; \
         cached: {} ok, {} failed, p99 {:?}; uncached: {} ok, {} failed, p99 {:?}",
        cached.latencies.len(),
        cached.failures.len(),
        cached.p99(),
        uncached.latencies.len(),
        uncached.failures.len(),
        uncached.p99(),
    );
    assert!(opened >= 1000, "the attack ran: {opened} connections");
    for (route, experience) in [("cached", &mut cached), ("uncached", &mut uncached)] {
        assert!(experience.latencies.len() >= 100, "{route}: too few requests ran: {experience:?}");
        assert!(
            experience.success_rate() >= 0.99,
            "{route}: {:.1} % succeeded; failures: {:?}",
            experience.success_rate() * 100.0,
            experience.failures
        );
        let p99 = experience.p99();
        assert!(p99 < Duration::from_millis(200), "{route}: p99 {p99:?}");
    }
    // It was the clocks that cut the attack off.
    assert!(metric(&app, "stratus_http_timeouts_total", r#"kind="header""#).await > 0.0);
    assert!(metric(&app, "stratus_http_timeouts_total", r#"kind="body""#).await > 0.0);
    app.stop().await;
}
