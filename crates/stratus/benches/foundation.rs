//! Figures for the foundation: table operations per second, commit → invocation latency of the
//! change stream, and `stratus serve` start-up time and idle memory. Run with
//! `cargo bench -p stratus --bench foundation`; it prints each figure next to its goal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stratus::config::Config;
use stratus::infra::clock::SystemClock;
use stratus::item;
use stratus::platform::Platform;
use stratus::ports::events::BatchResponse;
use stratus::ports::table::cached::{CacheSettings, CachedTable};
use stratus::ports::table::{Item, Query, Table, TransactOp};
use stratus::services::functions::{Host, StreamTrigger};

const PARTITIONS: usize = 100;
const PER_PARTITION: usize = 100;

/// The allocator `stratus serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    println!(
        "stratus foundation benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), stage: "bench".into(), ..Config::default() };
    config.stream.batching_window = Duration::ZERO;
    let platform = Arc::new(Platform::open(&config.platform(), Arc::new(SystemClock)).expect("platform"));

    let one_thread = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    one_thread.block_on(table_throughput(&platform));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(stream_latency(&platform, &config));
    serve_start_up();
}

fn key(partition: usize, sort: usize) -> Item {
    item! { "pk" => format!("user#{partition:04}"), "sk" => format!("todo#{sort:06}") }
}

fn todo(partition: usize, sort: usize) -> Item {
    let mut item = key(partition, sort);
    item.insert("title".into(), format!("Write the quarterly report, part {sort}").into());
    item.insert("status".into(), "open".into());
    item.insert("created".into(), (1_700_000_000 + sort as i64).into());
    item.insert(
        "tags".into(),
        stratus::ports::table::AttributeValue::Ss(["work".to_owned(), "q3".to_owned()].into()),
    );
    item
}

/// A small deterministic generator, so every run reads the same keys.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

fn report(name: &str, operations: usize, elapsed: Duration, goal: Option<f64>) {
    let rate = operations as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / operations as f64;
    match goal {
        Some(goal) => println!(
            "  {name:<8} {rate:>10.0} ops/s  ({micros:.1} µs/op)  goal ≥ {goal:.0}  ratio {:.2}×",
            rate / goal
        ),
        None => println!("  {name:<8} {rate:>10.0} ops/s  ({micros:.1} µs/op)"),
    }
}

/// Random gets (shared, as the APIs read items, and owned) and 10-item queries; the rates of
/// shared gets and of queries.
async fn reads(table: &dyn Table, random: &mut Lcg) -> (f64, f64) {
    let gets = 200_000;
    let started = Instant::now();
    for _ in 0..gets {
        let key = key(random.next(PARTITIONS), random.next(PER_PARTITION));
        let found = table.get_shared(&key).await.expect("get");
        assert!(found.is_some());
    }
    let get_rate = gets as f64 / started.elapsed().as_secs_f64();
    report("get", gets, started.elapsed(), Some(50_000.0));
    let started = Instant::now();
    for _ in 0..gets {
        let found = table.get(&key(random.next(PARTITIONS), random.next(PER_PARTITION))).await.expect("get");
        assert!(found.is_some());
    }
    report("get (owned copy)", gets, started.elapsed(), None);
    let queries = 20_000;
    let started = Instant::now();
    for _ in 0..queries {
        let partition = format!("user#{:04}", random.next(PARTITIONS));
        let page = table.query(Query::partition(partition).limit(10)).await.expect("query");
        assert_eq!(page.items.len(), 10);
    }
    report("query10", queries, started.elapsed(), None);
    (get_rate, queries as f64 / started.elapsed().as_secs_f64())
}

async fn table_throughput(platform: &Platform) {
    let table = platform.table(stratus::ports::table::conformance::spec("todos")).expect("table");
    for partition in 0..PARTITIONS {
        let operations = (0..PER_PARTITION)
            .map(|sort| TransactOp::Put { item: todo(partition, sort), condition: None })
            .collect();
        table.transact_write(operations).await.expect("load");
    }
    println!("table: SQLite adapter, warm, {} items, one thread", PARTITIONS * PER_PARTITION);

    let mut random = Lcg(42);
    for _ in 0..20_000 {
        let _ =
            table.get(&key(random.next(PARTITIONS), random.next(PER_PARTITION))).await.expect("warm-up get");
    }
    let (get_rate, query_rate) = reads(&table, &mut random).await;

    // The read cache in front of the same table (DAX's role), warm: every key read once.
    let cached = CachedTable::new(
        Arc::new(table.clone()),
        Arc::clone(&platform.clock),
        CacheSettings { ttl: Duration::from_secs(300), item_bytes: 256 << 20, query_bytes: 256 << 20 },
    );
    for partition in 0..PARTITIONS {
        for sort in 0..PER_PARTITION {
            cached.get(&key(partition, sort)).await.expect("warm-up get");
        }
        cached
            .query(Query::partition(format!("user#{partition:04}")).limit(10))
            .await
            .expect("warm-up query");
    }
    println!("table: behind the read cache (ports::table::cached), warm, one thread");
    let (cached_get, cached_query) = reads(&cached, &mut random).await;
    println!(
        "  cached/SQLite: get {:.1}×  query10 {:.1}×  (goal ≥ 5× for gets)",
        cached_get / get_rate,
        cached_query / query_rate
    );
    let stats = cached.stats();
    println!(
        "  cache: {} item hits, {} misses; {} query hits, {} misses",
        stats.item_hits, stats.item_misses, stats.query_hits, stats.query_misses
    );

    let puts = 10_000;
    let started = Instant::now();
    for i in 0..puts {
        table.put(todo(PARTITIONS + i % 10, i), None).await.expect("put");
    }
    report("put", puts, started.elapsed(), None);
}

async fn stream_latency(platform: &Arc<Platform>, config: &Config) {
    let table = platform
        .table(stratus::ports::table::TableSpec::new(
            "latency",
            stratus::ports::table::KeyAttribute::string("id"),
        ))
        .expect("table");
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut host = Host::new(Arc::clone(&platform.stream), &config.functions);
    let seen = Arc::clone(&latencies);
    host.on_table_change(
        "latency",
        table.stream_source(),
        StreamTrigger::new(&config.stream),
        move |_, batch| {
            let seen = Arc::clone(&seen);
            async move {
                let now = nanos_since_epoch();
                let mut seen = seen.lock().expect("latencies");
                for change in batch {
                    let image = change.dynamodb.new_image.expect("new image");
                    let written: u128 = image["t"].as_n().expect("t").as_str().parse().expect("nanos");
                    seen.push(Duration::from_nanos((now - written) as u64));
                }
                Ok(BatchResponse::success())
            }
        },
    )
    .expect("register");
    host.start().expect("start");

    let (rate, seconds) = (1_000u64, 5u64);
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for i in 0..rate * seconds {
        ticks.tick().await;
        // Stamped before the write: the latency includes the commit itself.
        table.put(item! { "id" => format!("w{i}"), "t" => nanos_since_epoch().to_string().parse::<stratus::ports::table::Number>().expect("n") }, None)
            .await
            .expect("put");
    }
    host.drain().await.expect("drain");
    host.shutdown().await;
    let mut latencies = latencies.lock().expect("latencies").clone();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let p99 = percentile(0.99);
    println!("stream: commit → invocation at {rate} writes/s for {seconds} s ({} records)", latencies.len());
    println!(
        "  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  goal p99 ≤ 20 ms  ratio {:.2}×",
        ms(percentile(0.50)),
        ms(p99),
        ms(*latencies.last().expect("records")),
        ms(p99) / 20.0
    );
}

fn nanos_since_epoch() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Starts the real binary, times it until `/healthz` answers, and reads its idle memory.
fn serve_start_up() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("STRATUS_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stratus serve");
    let stdout = child.stdout.take().expect("stdout");
    let (found, url) = std::sync::mpsc::channel();
    // Keep draining stdout so the server never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(word) = line.split_whitespace().find(|word| word.ends_with("/healthz")) {
                let _ = found.send(word.to_owned());
            }
        }
    });
    let healthz = url.recv().expect("a /healthz URL");
    let address = healthz.trim_start_matches("http://").trim_end_matches("/healthz").to_owned();
    http_get_ok(&address);
    let ready = started.elapsed();
    // Ready and serving nothing: the idle footprint.
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or_default();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let rss_mb = rss_kib as f64 / 1024.0;
    println!("serve: the release binary on port 0");
    println!(
        "  ready in {:.1} ms (goal < 500 ms, ratio {:.2}×)  idle RSS {:.1} MB (goal < 30 MB, ratio {:.2}×)",
        ms(ready),
        ms(ready) / 500.0,
        rss_mb,
        rss_mb / 30.0
    );
}

/// One plain HTTP/1.1 GET; panics unless the answer is 200.
fn http_get_ok(address: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
