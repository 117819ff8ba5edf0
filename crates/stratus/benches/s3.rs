//! Figures for the S3-compatible endpoint, through its HTTP protocol with real SigV4 signing,
//! against the same bytes served by nginx (GET) and written by `dd` (PUT, the disk's limit):
//! 4 KiB objects (ops/s, p50, p99) and 64 MiB objects (MB/s), the cost of encryption at rest,
//! and the server's peak memory across a 1 GiB streamed upload. Run with `bench/s3.sh`, which
//! installs nginx; without nginx the peer figures are skipped.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use stratus::infra::sigv4::{SignedRequest, amz_date, authorization_header};

const KEY: &str = "AKIABENCHMARK0000001";
const SECRET: &str = "benchmark-operator-secret";
const SMALL: usize = 4 * 1024;
const SMALL_COUNT: usize = 2000;
const CONCURRENCY: usize = 8;
const LARGE: usize = 64 * 1024 * 1024;
const LARGE_ROUNDS: usize = 3;
const STREAMED: u64 = 1024 * 1024 * 1024;

struct Server {
    child: Child,
    s3: String,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let data = tempfile::TempDir::new().expect("directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--stage", "bench", "--data-dir"])
        .arg(data.path())
        .env("STRATUS_LOG__FORMAT", "json")
        .env("STRATUS_LOG__FILTER", "warn")
        .env("STRATUS_IDENTITY__OPERATOR_ACCESS_KEY_ID", KEY)
        .env("STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stratus serve");
    let stdout = child.stdout.take().expect("stdout");
    let (found, url) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("S3-compatible endpoint: ") {
                let _ = found.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let s3 = url.recv_timeout(Duration::from_secs(30)).expect("the S3 endpoint's URL");
    Server { child, s3, data }
}

/// A SigV4-signed request: the payload hashed for small bodies, `UNSIGNED-PAYLOAD` for large
/// ones (what SDKs send over TLS), as the AWS CLI does.
fn signed(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Bytes,
    hash: bool,
) -> reqwest::RequestBuilder {
    let host = base.trim_start_matches("http://").to_owned();
    let payload = if hash { hex::encode(Sha256::digest(&body)) } else { "UNSIGNED-PAYLOAD".to_owned() };
    let headers = vec![
        ("host".to_owned(), host),
        ("x-amz-date".to_owned(), amz_date(SystemTime::now())),
        ("x-amz-content-sha256".to_owned(), payload),
    ];
    let request = SignedRequest { method, path, query: "", headers: headers.clone(), body: &body };
    let authorization = authorization_header(&request, KEY, SECRET, "us-east-1", "s3").expect("sign");
    let mut builder = client
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .header("authorization", authorization);
    for (name, value) in headers.into_iter().filter(|(name, _)| name != "host") {
        builder = builder.header(name, value);
    }
    builder.body(body)
}

async fn ok(builder: reqwest::RequestBuilder) -> usize {
    let response = builder.send().await.expect("request");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
    body.len()
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, share: f64) -> f64 {
        self.0.sort();
        let index = ((self.0.len() as f64 * share).ceil() as usize).saturating_sub(1).min(self.0.len() - 1);
        self.0[index].as_secs_f64() * 1000.0
    }
}

/// Runs `one(index)` for every index with `CONCURRENCY` in flight; ops/s and latencies.
async fn measure<F, Fut>(count: usize, one: F) -> (f64, Latencies)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|index| {
            let run = one(index);
            async move {
                let began = Instant::now();
                run.await;
                began.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    (count as f64 / started.elapsed().as_secs_f64(), Latencies(latencies))
}

struct Nginx {
    child: Child,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// nginx serving `root` (sendfile, open_file_cache), if it is installed.
fn nginx(root: &std::path::Path, work: &std::path::Path) -> Option<Nginx> {
    let port = 30000 + (std::process::id() % 20000) as u16;
    let config = work.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "worker_processes auto; daemon off; pid {work}/nginx.pid; error_log {work}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; open_file_cache max=5000 inactive=60s;\n\
             default_type application/octet-stream;\n\
             server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
            work = work.display(),
            root = root.display()
        ),
    )
    .ok()?;
    let child = Command::new("nginx").arg("-c").arg(&config).stderr(Stdio::null()).spawn().ok()?;
    let base = format!("http://127.0.0.1:{port}");
    // nginx is another program and says nothing when it listens: its port is tried for 5 s.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Nginx { child, base });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn peak_memory_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or_default()
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1_000_000.0 / elapsed.as_secs_f64()
}

fn main() {
    println!(
        "stratus S3 endpoint benchmark ({} cores, loopback, plain HTTP)",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    let server = start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started_kib = peak_memory_kib(server.child.id());
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    let base = server.s3.clone();
    runtime.block_on(ok(signed(&client, &base, "PUT", "/bench", Bytes::new(), true)));

    // 4 KiB objects.
    let small = Bytes::from(vec![7u8; SMALL]);
    let (put_rate, mut put_latency) = runtime.block_on(measure(SMALL_COUNT, |index| {
        let request = signed(&client, &base, "PUT", &format!("/bench/small/{index:05}"), small.clone(), true);
        async move {
            ok(request).await;
        }
    }));
    let (get_rate, mut get_latency) = runtime.block_on(measure(SMALL_COUNT, |index| {
        let request = signed(&client, &base, "GET", &format!("/bench/small/{index:05}"), Bytes::new(), true);
        async move {
            assert_eq!(ok(request).await, SMALL);
        }
    }));
    println!("4 KiB objects, {SMALL_COUNT} each, {CONCURRENCY} in flight:");
    println!(
        "  PUT  {put_rate:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms",
        put_latency.percentile(0.5),
        put_latency.percentile(0.99)
    );
    println!(
        "  GET  {get_rate:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms",
        get_latency.percentile(0.5),
        get_latency.percentile(0.99)
    );
    // Latency unloaded: one request at a time.
    let mut alone = Vec::with_capacity(SMALL_COUNT);
    for index in 0..SMALL_COUNT {
        let request = signed(&client, &base, "GET", &format!("/bench/small/{index:05}"), Bytes::new(), true);
        let began = Instant::now();
        assert_eq!(runtime.block_on(ok(request)), SMALL);
        alone.push(began.elapsed());
    }
    let mut alone = Latencies(alone);
    let alone_p99 = alone.percentile(0.99);
    println!(
        "  GET one at a time: p50 {:.2} ms  p99 {alone_p99:.2} ms (goal < 2 ms, ratio {:.2}×)",
        alone.percentile(0.5),
        alone_p99 / 2.0
    );
    let work = tempfile::TempDir::new().expect("directory");
    let buckets = server.data.path().join("bench").join("buckets");
    // nginx's workers run unprivileged: the data directory must be readable to them.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(server.data.path(), std::fs::Permissions::from_mode(0o755));
    }
    let peer = nginx(&buckets, work.path());
    if let Some(nginx) = &peer {
        let (rate, mut latency) = runtime.block_on(measure(SMALL_COUNT, |index| {
            let request = client.get(format!("{}/bench/small/{index:05}", nginx.base));
            async move {
                assert_eq!(ok(request).await, SMALL);
            }
        }));
        println!(
            "  nginx GET (same files) {rate:>8.0} ops/s  p99 {:.2} ms  → stratus {:.2}× nginx ops/s",
            latency.percentile(0.99),
            get_rate / rate
        );
    } else {
        println!("  (nginx not installed: no peer figures; bench/s3.sh installs it)");
    }

    // 64 MiB objects.
    let large = Bytes::from((0..LARGE).map(|index| (index % 251) as u8).collect::<Vec<u8>>());
    println!("64 MiB objects, best of {LARGE_ROUNDS}:");
    let best = |bucket: &str, label: &str| -> (f64, f64) {
        let mut put_best = Duration::MAX;
        let mut get_best = Duration::MAX;
        for round in 0..LARGE_ROUNDS {
            let path = format!("/{bucket}/large/{round}");
            let began = Instant::now();
            runtime.block_on(ok(signed(&client, &base, "PUT", &path, large.clone(), false)));
            put_best = put_best.min(began.elapsed());
            let began = Instant::now();
            assert_eq!(runtime.block_on(ok(signed(&client, &base, "GET", &path, Bytes::new(), true))), LARGE);
            get_best = get_best.min(began.elapsed());
        }
        let (put, get) = (mb_per_s(LARGE, put_best), mb_per_s(LARGE, get_best));
        println!("  {label:<34} PUT {put:>7.0} MB/s  GET {get:>7.0} MB/s");
        (put, get)
    };
    let (put_plain, get_plain) = best("bench", "stratus");
    let (put_sealed, get_sealed) = best("user-files", "stratus, encrypted at rest (SSE-S3)");
    println!(
        "  encryption at rest costs: PUT {:.2}×, GET {:.2}× of the plain bucket",
        put_sealed / put_plain,
        get_sealed / get_plain
    );
    let dd_target = buckets.join("bench").join("dd.bin");
    let mut dd_best = Duration::MAX;
    for _ in 0..LARGE_ROUNDS {
        let began = Instant::now();
        let status = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=64"])
            .arg(format!("of={}", dd_target.display()))
            .stderr(Stdio::null())
            .status()
            .expect("dd");
        assert!(status.success());
        dd_best = dd_best.min(began.elapsed());
    }
    let dd = mb_per_s(LARGE, dd_best);
    println!(
        "  dd bs=1M count=64 to the same disk    {dd:>7.0} MB/s  → stratus PUT {:.2}× dd",
        put_plain / dd
    );
    if let Some(nginx) = &peer {
        let mut best = Duration::MAX;
        for round in 0..LARGE_ROUNDS {
            let began = Instant::now();
            let length = runtime.block_on(ok(client.get(format!("{}/bench/large/{round}", nginx.base))));
            assert_eq!(length, LARGE);
            best = best.min(began.elapsed());
        }
        let rate = mb_per_s(LARGE, best);
        println!(
            "  nginx GET (same files)                {rate:>7.0} MB/s  → stratus GET {:.2}× nginx (goal ≥ 0.7)",
            get_plain / rate
        );
    }

    // Memory across a 1 GiB upload streamed from the client.
    let before = peak_memory_kib(server.child.id());
    println!(
        "server peak memory: {:.1} MB after start-up, {:.1} MB after the 64 MiB phase",
        started_kib as f64 / 1024.0,
        before as f64 / 1024.0
    );
    let chunk = Bytes::from(vec![1u8; 1024 * 1024]);
    let frames = (0..STREAMED / chunk.len() as u64)
        .map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(chunk.clone())));
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(frames)));
    let host = base.trim_start_matches("http://").to_owned();
    let headers = vec![
        ("host".to_owned(), host),
        ("x-amz-date".to_owned(), amz_date(SystemTime::now())),
        ("x-amz-content-sha256".to_owned(), "UNSIGNED-PAYLOAD".to_owned()),
    ];
    let request = SignedRequest {
        method: "PUT",
        path: "/bench/streamed",
        query: "",
        headers: headers.clone(),
        body: b"",
    };
    let authorization = authorization_header(&request, KEY, SECRET, "us-east-1", "s3").expect("sign");
    let mut builder = client
        .put(format!("{base}/bench/streamed"))
        .header("authorization", authorization)
        .header("content-length", STREAMED.to_string())
        .body(body);
    for (name, value) in headers.into_iter().filter(|(name, _)| name != "host") {
        builder = builder.header(name, value);
    }
    let began = Instant::now();
    runtime.block_on(ok(builder));
    let elapsed = began.elapsed();
    let after = peak_memory_kib(server.child.id());
    println!(
        "1 GiB streamed PUT: {:.0} MB/s; server peak memory {:.1} MB before, {:.1} MB after (+{:.1} MB; goal: a few MB)",
        mb_per_s(STREAMED as usize, elapsed),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0
    );
    drop(peer);
}
