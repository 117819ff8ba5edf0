//! Shared helpers: a platform in a temporary directory, fast retry settings, a recording
//! function, and an SMTP server that speaks just enough of RFC 5321 to receive messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use stratus::clock::{Clock, ManualClock};
use stratus::config::Config;
use stratus::platform::Platform;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

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

/// How the test SMTP server secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    None,
    /// Offers STARTTLS and upgrades when asked.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// A minimal SMTP server on 127.0.0.1 that refuses the first `failures` messages with a
/// transient error (451) and keeps the rest. With TLS it presents a self-signed certificate for
/// 127.0.0.1, whose PEM is written to `ca_file`.
pub struct SmtpSink {
    pub port: u16,
    pub received: Recorder<String>,
    pub refused: Arc<Mutex<usize>>,
    pub ca_file: std::path::PathBuf,
    /// How many sessions were encrypted when the message arrived.
    pub encrypted: Arc<Mutex<usize>>,
    _dir: TempDir,
}

struct SinkState {
    received: Recorder<String>,
    refused: Arc<Mutex<usize>>,
    encrypted: Arc<Mutex<usize>>,
    failures: usize,
}

impl SmtpSink {
    pub async fn start(failures: usize) -> Self {
        Self::start_with(failures, SinkTls::None).await
    }

    pub async fn start_with(failures: usize, tls: SinkTls) -> Self {
        let dir = TempDir::new().expect("directory");
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, certified.cert.pem()).expect("write certificate");
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let server =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
                .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(server));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(SinkState {
            received: Recorder::default(),
            refused: Arc::new(Mutex::new(0)),
            encrypted: Arc::new(Mutex::new(0)),
            failures,
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, acceptor) = (Arc::clone(&shared), acceptor.clone());
                tokio::spawn(async move {
                    match tls {
                        SinkTls::None => session(socket, &state, false, false, true).await.map(|_| ()),
                        SinkTls::Implicit => {
                            session(acceptor.accept(socket).await?, &state, false, true, true)
                                .await
                                .map(|_| ())
                        }
                        SinkTls::Starttls => match session(socket, &state, true, false, true).await? {
                            Ended::Closed => Ok(()),
                            Ended::StartTls(socket) => {
                                session(acceptor.accept(socket).await?, &state, false, true, false)
                                    .await
                                    .map(|_| ())
                            }
                        },
                    }
                });
            }
        });
        Self {
            port,
            received: state.received.clone(),
            refused: Arc::clone(&state.refused),
            encrypted: Arc::clone(&state.encrypted),
            ca_file,
            _dir: dir,
        }
    }
}

enum Ended<S> {
    Closed,
    StartTls(S),
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &SinkState,
    offer_starttls: bool,
    encrypted: bool,
    // After STARTTLS the client speaks first (EHLO again); otherwise the server greets.
    greet: bool,
) -> std::io::Result<Ended<S>> {
    let mut lines = BufReader::new(stream);
    if greet {
        lines.get_mut().write_all(b"220 sink.test ESMTP\r\n").await?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(Ended::Closed);
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            if offer_starttls {
                b"250-sink.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-sink.test\r\n250 8BITMIME\r\n"
            }
        } else if command == "STARTTLS" && offer_starttls {
            lines.get_mut().write_all(b"220 Ready to start TLS\r\n").await?;
            return Ok(Ended::StartTls(lines.into_inner()));
        } else if command.starts_with("MAIL") || command.starts_with("RCPT") || command.starts_with("RSET") {
            b"250 OK\r\n"
        } else if command == "DATA" {
            lines.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut message = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(Ended::Closed);
                }
                if line == ".\r\n" {
                    break;
                }
                message.push_str(&line);
            }
            let refuse = {
                let mut count = state.refused.lock().expect("refusals");
                let refuse = *count < state.failures;
                if refuse {
                    *count += 1;
                }
                refuse
            };
            if refuse {
                b"451 4.3.0 Try again later\r\n"
            } else {
                state.received.push(message);
                if encrypted {
                    *state.encrypted.lock().expect("encrypted") += 1;
                }
                b"250 OK queued\r\n"
            }
        } else if command == "QUIT" {
            lines.get_mut().write_all(b"221 Bye\r\n").await?;
            return Ok(Ended::Closed);
        } else {
            b"502 Command not implemented\r\n"
        };
        lines.get_mut().write_all(reply).await?;
    }
}
