//! Shared helpers: a platform in a temporary directory, fast retry settings, a recording
//! function, and an SMTP server that speaks just enough of RFC 5321 to receive messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use stratus::clock::{Clock, ManualClock};
use stratus::config::Config;
use stratus::platform::Platform;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A configuration whose data lives in `dir`, with retries fast enough for tests.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), stage: "test".into(), ..Config::default() };
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.stream.backoff_initial = Duration::from_millis(1);
    config.stream.backoff_max = Duration::from_millis(4);
    config.stream.max_attempts = 3;
    config.functions.timeout = Duration::from_secs(10);
    config
}

/// A platform over a temporary data directory that survives reopening (a process restart).
pub struct TestPlatform {
    pub dir: TempDir,
    pub config: Config,
    pub clock: ManualClock,
    pub platform: Arc<Platform>,
}

impl TestPlatform {
    pub fn new() -> Self {
        let dir = TempDir::new().expect("temporary directory");
        let config = test_config(dir.path());
        let clock = ManualClock::new(SystemTime::now());
        let platform = Arc::new(Platform::open(&config, Arc::new(clock.clone())).expect("platform"));
        Self { dir, config, clock, platform }
    }

    /// Drops the platform and opens the same data again, as a restarted process would.
    pub fn reopen(&mut self) {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        self.platform = Arc::new(Platform::open(&self.config, clock).expect("reopen platform"));
    }
}

/// Everything a test function received, in order.
#[derive(Debug, Clone)]
pub struct Recorder<T> {
    seen: Arc<Mutex<Vec<T>>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self { seen: Arc::new(Mutex::new(Vec::new())) }
    }
}

impl<T: Clone> Recorder<T> {
    pub fn push(&self, value: T) {
        self.seen.lock().expect("recorder").push(value);
    }

    pub fn all(&self) -> Vec<T> {
        self.seen.lock().expect("recorder").clone()
    }
}

/// A minimal SMTP server on 127.0.0.1 that refuses the first `failures` messages with a
/// transient error (451) and keeps the rest.
pub struct SmtpSink {
    pub port: u16,
    pub received: Recorder<String>,
    pub refused: Arc<Mutex<usize>>,
}

impl SmtpSink {
    pub async fn start(failures: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let received = Recorder::default();
        let refused = Arc::new(Mutex::new(0));
        let (keep, refusals) = (received.clone(), Arc::clone(&refused));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (keep, refusals) = (keep.clone(), Arc::clone(&refusals));
                tokio::spawn(serve_smtp(socket, keep, refusals, failures));
            }
        });
        Self { port, received, refused }
    }
}

async fn serve_smtp(
    socket: tokio::net::TcpStream,
    received: Recorder<String>,
    refused: Arc<Mutex<usize>>,
    failures: usize,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL") || command.starts_with("RCPT") || command.starts_with("RSET") {
            b"250 OK\r\n"
        } else if command == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut message = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                message.push_str(&line);
            }
            let refuse = {
                let mut count = refused.lock().expect("refusals");
                let refuse = *count < failures;
                if refuse {
                    *count += 1;
                }
                refuse
            };
            if refuse {
                b"451 4.3.0 Try again later\r\n"
            } else {
                received.push(message);
                b"250 OK queued\r\n"
            }
        } else if command == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}
