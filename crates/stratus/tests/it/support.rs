//! Shared helpers: a platform in a temporary directory, fast retry settings, a recording
//! function, and an SMTP server that speaks just enough of RFC 5321 to receive messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use stratus::config::Config;
use stratus::infra::clock::{Clock, ManualClock};
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
    config.functions.background_timeout = Duration::from_secs(10);
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
        let platform =
            Arc::new(Platform::open(&config.platform(), Arc::new(clock.clone())).expect("platform"));
        Self { dir, config, clock, platform }
    }

    /// Drops the platform and opens the same data again, as a restarted process would.
    pub fn reopen(&mut self) {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        self.platform = Arc::new(Platform::open(&self.config.platform(), clock).expect("reopen platform"));
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

/// A running `Application` on port 0 with a manual clock, and clients for its protocols.
pub struct TestApp {
    dir: TempDir,
    pub base: String,
    pub clock: ManualClock,
    pub pool_id: String,
    pub client_id: String,
    pub identity: Arc<stratus::services::cognito::user_pool::Identity>,
    pub platform: Arc<Platform>,
    pub http: reqwest::Client,
    /// `http://<address>` of the S3-compatible endpoint.
    pub s3_base: String,
    pub identity_pools: Arc<stratus::services::cognito::identity_pool::IdentityPools>,
    /// The WebSocket API's connections, as functions reach them.
    pub connections: Arc<stratus::services::gateway::Connections>,
    seen_mail: Mutex<std::collections::HashSet<String>>,
    drainer: stratus::services::functions::Drainer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), stratus::app::AppError>>>,
}

pub const OPERATOR_KEY: &str = "TESTOPERATOR";
pub const OPERATOR_SECRET: &str = "test-operator-secret-0123456789";

impl TestApp {
    /// Where the stage's state lives: `stratus.db`, `buckets/`, `outbox/`.
    pub fn stage_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("test")
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}, |_| {}).await
    }

    /// `configure` edits the configuration; `prepare` mounts functions before the app runs.
    pub async fn spawn_with(
        configure: impl FnOnce(&mut Config),
        prepare: impl FnOnce(&mut stratus::app::Application),
    ) -> Self {
        let dir = TempDir::new().expect("temporary directory");
        Self::spawn_in(dir, ManualClock::new(SystemTime::now()), configure, prepare).await
    }

    /// Stops the server and starts a new one on the same data and clock, as a restart would.
    pub async fn restart(mut self, configure: impl FnOnce(&mut Config)) -> Self {
        self.shut_down().await;
        let (dir, clock) =
            (std::mem::replace(&mut self.dir, TempDir::new().expect("dir")), self.clock.clone());
        Self::spawn_in(dir, clock, configure, |_| {}).await
    }

    async fn spawn_in(
        dir: TempDir,
        clock: ManualClock,
        configure: impl FnOnce(&mut Config),
        prepare: impl FnOnce(&mut stratus::app::Application),
    ) -> Self {
        let mut config = test_config(dir.path());
        config.identity.operator_access_key_id = OPERATOR_KEY.into();
        config.identity.operator_secret_access_key = Some(OPERATOR_SECRET.into());
        config.identity.sign_in_per_user_per_minute = 1000;
        config.identity.requests_per_address_per_minute = 100_000;
        configure(&mut config);
        let mut app =
            stratus::app::Application::build_with_clock(config, Arc::new(clock.clone())).await.expect("app");
        prepare(&mut app);
        // Functions start now so the test can drain them; `run` finds nothing left to start.
        app.host_mut().start().expect("start functions");
        let drainer = app.host_mut().drainer();
        // Requests go to the socket; the public URL may name a host that does not resolve here.
        let base = format!("http://{}", app.local_addr());
        let identity = Arc::clone(app.identity());
        let platform = Arc::clone(app.platform());
        let s3_base = app.s3_addr().map(|address| format!("http://{address}")).unwrap_or_default();
        let identity_pools = Arc::clone(app.identity_pools());
        let connections = Arc::clone(app.connections());
        let pool = identity.pool_named("default").expect("default pool");
        let (pool_id, client_id) = (pool.id().to_owned(), pool.clients()[0].1.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            dir,
            base,
            clock,
            pool_id,
            client_id,
            identity,
            platform,
            http: reqwest::Client::new(),
            s3_base,
            identity_pools,
            connections,
            seen_mail: Mutex::new(Default::default()),
            drainer,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Waits until the app's functions have processed everything written so far.
    pub async fn drain(&self) {
        self.drainer.drain().await.expect("drain");
    }

    /// One Cognito call, unsigned (as apps make them).
    pub async fn cognito(&self, operation: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/", self.base))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{operation}"))
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// One Cognito call signed with the operator credentials (SigV4), as the AWS CLI makes them.
    pub async fn admin(&self, operation: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.signed(operation, body, OPERATOR_SECRET).await
    }

    pub async fn signed(
        &self,
        operation: &str,
        body: serde_json::Value,
        secret: &str,
    ) -> (u16, serde_json::Value) {
        let body = body.to_string();
        let host = self.base.trim_start_matches("http://").to_owned();
        let headers = vec![
            ("host".to_owned(), host),
            ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
            ("x-amz-date".to_owned(), stratus::infra::sigv4::amz_date(SystemTime::now())),
            ("x-amz-target".to_owned(), format!("AWSCognitoIdentityProviderService.{operation}")),
        ];
        let request = stratus::infra::sigv4::SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: headers.clone(),
            body: body.as_bytes(),
        };
        let authorization = stratus::infra::sigv4::authorization_header(
            &request,
            OPERATOR_KEY,
            secret,
            "us-east-1",
            "cognito-idp",
        )
        .expect("sign");
        let mut builder = self.http.post(format!("{}/", self.base)).header("authorization", authorization);
        for (name, value) in headers.iter().filter(|(name, _)| name != "host") {
            builder = builder.header(name, value);
        }
        let response = builder.body(body).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The code in the newest email to `address` that this helper has not returned before.
    pub fn next_code_for(&self, address: &str) -> String {
        let outbox = self.platform.outbox().expect("outbox");
        let mut seen = self.seen_mail.lock().expect("seen");
        for entry in outbox.list().expect("list") {
            if entry.to != address || seen.contains(&entry.id) {
                continue;
            }
            seen.insert(entry.id.clone());
            let raw = outbox.read(&entry.id).expect("read");
            return raw
                .lines()
                .map(str::trim)
                .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
                .expect("a 6-digit code in the email")
                .to_owned();
        }
        panic!("no new email to {address}");
    }

    /// Signs up and confirms `username` (email `<username>@example.com`); returns the tokens.
    pub async fn signed_in_user(&self, username: &str, password: &str) -> serde_json::Value {
        let email = format!("{username}@example.com");
        let (status, body) = self
            .cognito(
                "SignUp",
                serde_json::json!({
                    "ClientId": self.client_id, "Username": username, "Password": password,
                    "UserAttributes": [{"Name": "email", "Value": email}],
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let code = self.next_code_for(&email);
        let (status, body) = self
            .cognito("ConfirmSignUp", serde_json::json!({"ClientId": self.client_id, "Username": username, "ConfirmationCode": code}))
            .await;
        assert_eq!(status, 200, "{body}");
        self.sign_in(username, password).await
    }

    /// Signs up `username` into the group `authors` (created when missing); returns their
    /// access token.
    pub async fn author_token(&self, username: &str, password: &str) -> String {
        self.admin("CreateGroup", serde_json::json!({"UserPoolId": self.pool_id, "GroupName": "authors"}))
            .await;
        self.signed_in_user(username, password).await;
        let membership =
            serde_json::json!({"UserPoolId": self.pool_id, "Username": username, "GroupName": "authors"});
        let (status, body) = self.admin("AdminAddUserToGroup", membership).await;
        assert_eq!(status, 200, "{body}");
        self.sign_in(username, password).await["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> serde_json::Value {
        let (status, body) = self
            .cognito(
                "InitiateAuth",
                serde_json::json!({
                    "ClientId": self.client_id, "AuthFlow": "USER_PASSWORD_AUTH",
                    "AuthParameters": {"USERNAME": username, "PASSWORD": password},
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("clean shutdown");
        }
    }
}
