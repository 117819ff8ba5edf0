//! Figures for identity: access-token verifications per second on one core, the overhead of an
//! authorized route over an open one under load (`wrk`, if installed), sign-in throughput
//! (bound by argon2id by design), and the identity-pool flow (ID token → credentials). Run with `cargo bench -p stratus --bench identity`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use stratus::app::Application;
use stratus::config::Config;
use stratus::services::cognito::authorizer::Principal;
use stratus::services::cognito::user_pool::AdminCreateUser;

const PASSWORD: &str = "Correct-Horse-9";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), stage: "bench".into(), ..Config::default() };
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.identity.sign_in_per_user_per_minute = 1_000_000;
    config.identity.requests_per_address_per_minute = 100_000_000;
    config.log.filter = "warn".into();
    let mut app = Application::build(config).await.expect("app");
    let authorizer = Arc::clone(app.authorizer());
    app.mount(
        Router::new()
            .route("/v1/open", get(|| async { "ok" }))
            .route("/v1/me", get(|principal: Principal| async move { principal.username }))
            .with_state(Arc::clone(&authorizer)),
    );
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

    println!("identity: RS256 access tokens (2048-bit keys), one core");
    // Distinct tokens, each verified once: the full RSA signature check every time.
    let mut fresh = Vec::new();
    let mut refresh_token = match pool.password_auth(&client_id, "bench", PASSWORD).await.expect("sign in") {
        stratus::services::cognito::user_pool::AuthOutcome::Authenticated(tokens) => {
            tokens.refresh_token.expect("refresh")
        }
        other => panic!("unexpected challenge {other:?}"),
    };
    for _ in 0..2_000 {
        let tokens = pool.refresh(&client_id, &refresh_token).await.expect("refresh");
        refresh_token = tokens.refresh_token.clone().expect("rotated");
        fresh.push(tokens.access_token);
    }
    let started = Instant::now();
    for token in &fresh {
        pool.verify_access_token(token).expect("valid");
    }
    let cold = fresh.len() as f64 / started.elapsed().as_secs_f64();
    let peer = openssl_rsa2048_verify_rate();
    match peer {
        Some(peer) => println!(
            "  verify, first sight   {cold:>10.0} tokens/s  (OpenSSL's bare RSA-2048 verify on this core: {peer:.0}/s, ratio {:.2}×)",
            cold / peer
        ),
        None => println!("  verify, first sight   {cold:>10.0} tokens/s"),
    }
    // The same token again, as a client sends it on every request: the verified-token cache.
    let verifications = 1_000_000;
    let started = Instant::now();
    for _ in 0..verifications {
        pool.verify_access_token(&token).expect("valid");
    }
    let hot = verifications as f64 / started.elapsed().as_secs_f64();
    println!("  verify, seen before   {hot:>10.0} tokens/s  goal ≥ 50000  ratio {:.2}×", hot / 50_000.0);

    // The authorizer's whole hot path (cache hit, revocation check, principal).
    let calls = 1_000_000;
    let started = Instant::now();
    for _ in 0..calls {
        authorizer.authenticate(&token).await.expect("valid");
    }
    let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!("  authorizer, seen before: {per_call:.2} µs per request");

    // The same two routes in-process (no sockets, no wrk sharing the cores): the server-side
    // cost per request with and without authorization.
    {
        use tower::ServiceExt as _;
        let router = Router::new()
            .route("/v1/open", get(|| async { "ok" }))
            .route("/v1/me", get(|principal: Principal| async move { principal.username }))
            .with_state(Arc::clone(&authorizer));
        for path in ["/v1/open", "/v1/me"] {
            let started = Instant::now();
            for _ in 0..200_000 {
                let request = axum::http::Request::get(path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .expect("request");
                let response = router.clone().oneshot(request).await.expect("response");
                assert!(response.status().is_success());
            }
            println!(
                "  in-process {path:<9} {:.2} µs per request (same bearer header on both)",
                started.elapsed().as_secs_f64() * 1e6 / 200_000.0
            );
        }
    }

    let sign_ins = 30;
    let started = Instant::now();
    for _ in 0..sign_ins {
        pool.password_auth(&client_id, "bench", PASSWORD).await.expect("sign in");
    }
    let per_second = sign_ins as f64 / started.elapsed().as_secs_f64();
    println!("  sign-in  {per_second:>10.1} per second (argon2id m=19 MiB, t=2, p=1: bound by design)");

    // The identity pool: an ID token traded for an identity and temporary credentials, as a
    // mobile app does at each start (RS256 verification of the ID token, two database writes).
    let id_token = match pool.password_auth(&client_id, "bench", PASSWORD).await.expect("sign in") {
        stratus::services::cognito::user_pool::AuthOutcome::Authenticated(tokens) => tokens.id_token,
        other => panic!("unexpected challenge {other:?}"),
    };
    let pools = Arc::clone(app.identity_pools());
    let identity_pool = pools.id_named("default").expect("pools").expect("default pool");
    let logins = std::collections::BTreeMap::from([(
        format!("cognito-idp.us-east-1.amazonaws.com/{}", pool.id()),
        id_token,
    )]);
    let flows = 500;
    let started = Instant::now();
    for _ in 0..flows {
        let identity = pools.get_id(&identity_pool, &logins).await.expect("GetId");
        pools.credentials_for(&identity.id, &logins).await.expect("GetCredentialsForIdentity");
    }
    let per_second = flows as f64 / started.elapsed().as_secs_f64();
    println!("  identity flow (GetId + GetCredentialsForIdentity)  {per_second:>8.0} per second, in process");

    // No user enumeration by timing: an unknown user costs the same argon2 verification.
    let mut timings = [Vec::new(), Vec::new()];
    for round in 0..40 {
        let username = if round % 2 == 0 { "bench" } else { "nobody" };
        let started = Instant::now();
        let refused = pool.password_auth(&client_id, username, "Wrong-Pass-1").await;
        assert!(refused.is_err());
        timings[round % 2].push(started.elapsed());
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1000.0
    };
    let (wrong, unknown) = (median(&mut timings[0]), median(&mut timings[1]));
    println!(
        "  refused sign-in, median: wrong password {wrong:.1} ms, unknown user {unknown:.1} ms (ratio {:.2})",
        unknown / wrong
    );

    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("  (wrk not installed: `apt-get install wrk` to measure the authorized-request overhead)");
    } else {
        // Alternate the routes and keep each one's best run: the machine is shared with wrk.
        let bearer = format!("Authorization: Bearer {token}");
        let mut best = [(0.0, String::new()), (0.0, String::new()), (0.0, String::new())];
        for _ in 0..3 {
            let runs = [
                (format!("{base}/v1/open"), None),
                (format!("{base}/v1/open"), Some(bearer.clone())),
                (format!("{base}/v1/me"), Some(bearer.clone())),
            ];
            for (slot, (url, header)) in runs.into_iter().enumerate() {
                let result =
                    tokio::task::spawn_blocking(move || wrk(&url, header.as_deref())).await.expect("wrk");
                if result.0 > best[slot].0 {
                    best[slot] = result;
                }
            }
        }
        let [plain, same_bytes, authorized] = best;
        println!("  HTTP under load (wrk, 2 threads, 32 connections, 5 s per run, best of 3, same process):");
        println!("    open route                        {:>9.0} req/s  p99 {}", plain.0, plain.1);
        println!("    open route, same bearer header    {:>9.0} req/s  p99 {}", same_bytes.0, same_bytes.1);
        println!("    authorized route                  {:>9.0} req/s  p99 {}", authorized.0, authorized.1);
        println!(
            "    authorizer overhead {:.1} % (vs the same request bytes), {:.1} % (vs a request without a token)  goal ≤ 10 %",
            (same_bytes.0 - authorized.0) / same_bytes.0 * 100.0,
            (plain.0 - authorized.0) / plain.0 * 100.0
        );
        // The server's CPU time per request, with both cores busy: the hot path's share of it.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
        let per_request = cores / same_bytes.0 * 1e6;
        println!(
            "    CPU per request ≈ {per_request:.1} µs (both cores, wrk included); the authorizer adds {per_call:.2} µs = {:.1} %",
            per_call / per_request * 100.0
        );
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// The peer figure: `openssl speed rsa2048` verifications per second, if OpenSSL is installed.
fn openssl_rsa2048_verify_rate() -> Option<f64> {
    let output = Command::new("openssl").args(["speed", "-seconds", "2", "rsa2048"]).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|line| line.starts_with("rsa 2048 bits"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Requests per second and p99 latency reported by `wrk`.
fn wrk(url: &str, header: Option<&str>) -> (f64, String) {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c32", "-d5s", "--latency"]);
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output().expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%").map(|value| value.trim().to_owned()))
        .unwrap_or_else(|| "?".into());
    let non_2xx = text.lines().find(|line| line.contains("Non-2xx"));
    assert!(non_2xx.is_none(), "{url}: {text}");
    (rate, p99)
}
