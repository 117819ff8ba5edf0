//! `Application::build(config)`: the one place where the whole system is wired — platform,
//! function host, HTTP listener — and `run` serves it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::apps::blog::subscriber_api::SubscriberState;
use crate::component::{InstallError, Installer};
use crate::config::Config;
use crate::health::{self, HealthState, MetricsState};
use crate::infra::clock::{Clock, SystemClock};
use crate::infra::http::body::BodyLimit;
use crate::infra::http::metrics::HttpMetrics;
use crate::infra::http::server::Listener;
use crate::infra::http::{self, Problem};
use crate::infra::telemetry::error_chain;
use crate::platform::{Platform, PlatformError};
use crate::services::cognito::authorizer::Authorizer;
use crate::services::cognito::credentials::CredentialStore;
use crate::services::cognito::identity_pool::protocol::IdentityPoolService;
use crate::services::cognito::identity_pool::{IdentityPoolError, IdentityPools};
use crate::services::cognito::user_pool::protocol::{self as cognito_protocol, UserPoolService};
use crate::services::cognito::user_pool::{Identity, IdentityError};
use crate::services::functions::{Host, HostError};
use crate::services::iam::{Iam, IamError};
use crate::services::s3::S3Listener;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("cannot open the user pools")]
    Identity(#[from] IdentityError),
    #[error("cannot open the identity pools")]
    IdentityPools(#[from] IdentityPoolError),
    #[error("cannot load the IAM roles")]
    Iam(#[from] IamError),
    #[error("cannot open the credentials store or the API keys")]
    Credentials(#[from] crate::infra::sqlite::DbError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot record the public URL in the stage directory")]
    RecordPublicUrl(#[source] std::io::Error),
    #[error("cannot build the APIs' OpenAPI document")]
    Document(#[from] crate::services::gateway::openapi::DocumentError),
    #[error("cannot set up HTTPS")]
    Tls(#[from] crate::infra::http::tls::TlsError),
    #[error("cannot build the HTTP client that fetches remote issuers' keys")]
    Authorizer(#[source] reqwest::Error),
    #[error("[gateway.authorizers] name functions no one registered: {}", .0.join(", "))]
    MissingAuthorizers(Vec<String>),
}

#[derive(Debug)]
pub struct Application {
    platform: Arc<Platform>,
    identity: Arc<Identity>,
    identity_pools: Arc<IdentityPools>,
    credentials: Arc<CredentialStore>,
    authorizer: Arc<Authorizer>,
    /// Throttles, API keys and the response cache in front of the APIs.
    gateway: Arc<crate::services::gateway::Gateway>,
    host: Host,
    /// HTTP functions: routers mounted on the listener.
    functions: Router,
    subscriptions: SubscriberState,
    /// Serves the site for every path no function claims.
    edge: Arc<crate::services::edge::Edge>,
    listener: Listener,
    /// The S3-compatible endpoint's own listener, unless `[s3] enabled = false`.
    s3: Option<S3Listener>,
    /// The certificate both listeners serve, with TLS on.
    tls_files: Option<crate::infra::http::tls::TlsFiles>,
    http_metrics: HttpMetrics,
    /// Every component's metrics, registered while the system is built.
    metrics: Registry,
    public_url: String,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let platform = Arc::new(Platform::open(&config.platform(), clock)?);
        let mut host = Host::new(Arc::clone(&platform.stream), &config.functions);
        let address = config.server.listen;
        let socket = TcpListener::bind(address).await.map_err(|source| AppError::Bind { address, source })?;
        let http_metrics = HttpMetrics::default();
        let tls_files =
            crate::infra::http::tls::prepare(&config.server.tls, platform.stage_dir(), &config.stage)?;
        let tls = tls_files
            .as_ref()
            .map(|files| crate::infra::http::tls::server_config(files, Arc::clone(&platform.clock)))
            .transpose()?;
        let mut listener = Listener::new(socket, &config.server, http_metrics.clone())
            .map_err(|source| AppError::Bind { address, source })?;
        if let Some(tls) = &tls {
            listener = listener.with_tls(Arc::clone(tls));
        }
        let local_addr = listener.local_addr();
        let public_url = config.server.public_url(local_addr);
        platform.record_public_url(&public_url).map_err(AppError::RecordPublicUrl)?;
        let identity = Arc::new(Identity::open(&config.identity, &platform, &public_url)?);
        // Read now, so that a broken policy file stops start-up.
        let iam = Arc::new(Iam::load(&config.iam)?);
        let credentials = Arc::new(CredentialStore::open(Arc::clone(&platform.db))?);
        let operator = identity.operator();
        credentials
            .put_long_term(
                &operator.access_key_id,
                &operator.secret_access_key,
                platform.clock.now_millis() / 1000,
            )
            .await?;
        let identity_pools = Arc::new(IdentityPools::open(
            &config.identity_pools,
            &platform,
            Arc::clone(&identity),
            Arc::clone(&credentials),
            &public_url,
        )?);
        let authorizer = Arc::new(
            Authorizer::new(identity.verifiers(), &config.identity.issuers, Arc::clone(&platform.clock))
                .map_err(AppError::Authorizer)?,
        );
        // The components, each opened from the shared dependencies, registering its functions
        // and handing back its routes.
        let keys = crate::services::gateway::ApiKeys::open(Arc::clone(&platform.db))?;
        let mut apis = crate::apps::openapi();
        apis.push(crate::services::gateway::Gateway::admin_document());
        let document = crate::services::gateway::openapi::ApiDocument::new(
            apis,
            &config.stage,
            &public_url,
            &config.gateway,
        )?;
        let gateway = Arc::new(crate::services::gateway::Gateway::new(
            &config.gateway,
            keys.clone(),
            Arc::clone(&authorizer),
            crate::services::gateway::AuthorizerParts {
                pools: Arc::clone(&identity_pools),
                iam: Arc::clone(&iam),
                functions: host.authorizers(),
                region: config.region.clone(),
                stage: config.stage.clone(),
                clock: Arc::clone(&platform.clock),
            },
            document,
            Arc::clone(&platform.clock),
        ));
        let mut with = Installer {
            platform: &platform,
            host: &mut host,
            authorizer: &authorizer,
            public_url: &public_url,
            stream: &config.stream,
            functions: &config.functions,
            table: &config.table,
            gateway: &gateway,
        };
        let (blog, subscriptions) = crate::apps::blog::install(&mut with, &config.blog).await?;
        let photos =
            crate::apps::media::install(&mut with, &config.media, &config.blog.authors_group).await?;
        let edge =
            crate::services::edge::install(&mut with, &config.edge, &config.blog.site_bucket, &config.media)?;
        let todos = crate::apps::todos::install(&mut with, &config.todos, &identity_pools)?;
        let admin = with.host.http_function(
            gateway.admin_api(keys, Arc::clone(&platform.clock)),
            BodyLimit::new(64 * 1024, Problem::body_refused),
        );
        let admin = gateway.wrap(
            admin,
            crate::services::gateway::ApiOptions {
                requires_key: false,
                max_body_bytes: 64 * 1024,
                strict_query: true,
                cache: None,
            },
        );
        let functions = blog
            .merge(photos)
            .merge(todos)
            .merge(admin)
            .merge(gateway.websocket_api())
            .merge(gateway.document_routes());
        let s3 = crate::services::s3::install(
            &config.s3,
            crate::services::s3::S3Parts {
                platform: &platform,
                credentials: Arc::clone(&credentials),
                pools: Arc::clone(&identity_pools),
                iam,
                server: &config.server,
                tls,
                operator_only: std::iter::once(config.blog.site_bucket.clone()).collect(),
            },
        )
        .await?;
        let mut metrics = Registry::with_prefix("stratus");
        http_metrics.register(&mut metrics);
        metrics.register_collector(Box::new(Arc::clone(listener.admission())));
        metrics.register_collector(Box::new(crate::services::functions::slots::PoolMetrics(host.pools())));
        Ok(Self {
            platform,
            identity,
            identity_pools,
            credentials,
            authorizer,
            gateway,
            host,
            functions,
            subscriptions,
            edge,
            listener,
            s3,
            tls_files,
            http_metrics,
            metrics,
            public_url,
            config,
        })
    }

    /// The configuration the system was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Where the S3-compatible endpoint listens, if it is on.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3.as_ref().map(S3Listener::local_addr)
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    pub fn identity_pools(&self) -> &Arc<IdentityPools> {
        &self.identity_pools
    }

    /// The WebSocket API's connections (API Gateway's `@connections`), for functions.
    pub fn connections(&self) -> &Arc<crate::services::gateway::Connections> {
        self.gateway.connections()
    }

    /// Checks access tokens for HTTP functions (`Principal` extractor).
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// The function host, to register functions before [`Application::run`].
    pub fn host_mut(&mut self) -> &mut Host {
        &mut self.host
    }

    /// Mounts an HTTP function: an axum `Router`, the same value `lambda_http::run` serves on
    /// AWS. Its requests are read whole (up to `functions.max_body_bytes`) and then invoked in
    /// the host's HTTP slots.
    pub fn mount(&mut self, function: Router) {
        let limit = BodyLimit::new(self.config.functions.max_body_bytes, Problem::body_refused);
        let function = self.host.http_function(function, limit);
        self.functions = std::mem::take(&mut self.functions).merge(function);
    }

    /// Mounts an HTTP function behind the gateway, as the built-in APIs are: the stage's
    /// throttles and route authorizers, the usage plans' keys when `options` requires one, and
    /// the response cache of its GETs.
    pub fn mount_api(&mut self, function: Router, options: crate::services::gateway::ApiOptions) {
        let limit = BodyLimit::new(options.max_body_bytes, Problem::body_refused);
        let function = self.gateway.wrap(self.host.http_function(function, limit), options);
        self.functions = std::mem::take(&mut self.functions).merge(function);
    }

    /// What `stratus serve` prints once it listens.
    pub fn banner(&self) -> String {
        use std::fmt::Write as _;
        let config = &self.config;
        let url = &self.public_url;
        let mut banner = format!(
            "Stratus is running: stage `{stage}`, data in {data}\n  \
             {url}/          the blog (edge)\n  \
             {url}/v1/posts  posts API\n  \
             {url}/healthz  liveness\n  \
             {url}/readyz   readiness\n",
            stage = config.stage,
            data = config.stage_dir().display(),
        );
        if let Some(ca) = self.tls_files.as_ref().and_then(|files| files.ca.as_ref()) {
            let _ = writeln!(
                banner,
                "HTTPS with a local CA: trust {} (e.g. AWS_CA_BUNDLE, --cacert)",
                ca.display()
            );
        }
        if let Some(s3) = &self.s3 {
            let _ = writeln!(
                banner,
                "S3-compatible endpoint: {}  (buckets {}; virtual hosts <bucket>.{})",
                s3.public_url(),
                config.s3.buckets.join(", "),
                config.s3.domain
            );
        }
        let _ = writeln!(banner, "Cognito-compatible endpoint: {url}  (region {})", config.region);
        for pool in self.identity.pools() {
            let _ = writeln!(banner, "  pool `{}`: id {}  issuer {}", pool.name(), pool.id(), pool.issuer());
            for (name, id) in pool.clients() {
                let _ = writeln!(banner, "    app client `{name}`: {id}");
            }
        }
        for name in config.identity_pools.pools.keys() {
            if let Ok(Some(id)) = self.identity_pools.id_named(name) {
                let _ = writeln!(banner, "  identity pool `{name}`: id {id}");
            }
        }
        if config.identity.operator_secret_access_key.is_none() {
            let path =
                crate::services::cognito::user_pool::operator_credentials_path(self.platform.stage_dir());
            let _ = writeln!(banner, "  operator credentials (Admin* calls): {}", path.display());
        }
        banner.push_str("Stop with Ctrl-C (or SIGTERM).");
        banner
    }

    /// Serves until `shutdown` completes, then stops accepting requests, lets in-flight
    /// invocations finish and writes their checkpoints.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let config = self.config.clone();
        let missing = self.gateway.missing_authorizer_functions();
        if !missing.is_empty() {
            return Err(AppError::MissingAuthorizers(missing));
        }
        self.host.start()?;
        let background = CancellationToken::new();
        let sweeper = tokio::spawn(sweep_expired_items(
            Arc::clone(&self.platform),
            config.table.ttl_sweep_interval,
            background.clone(),
        ));
        let pruner = tokio::spawn(prune_throttles(
            Arc::clone(&self.identity),
            self.subscriptions.clone(),
            background.clone(),
        ));
        let forgetter = tokio::spawn(forget_expired_credentials(
            Arc::clone(&self.credentials),
            Arc::clone(&self.platform.clock),
            background.clone(),
        ));
        let trimmer = tokio::spawn(trim_stream(
            Arc::clone(&self.platform),
            config.stream.clone(),
            self.host.consumer_names(),
            background.clone(),
        ));
        let gateway = tokio::spawn(keep_up_gateway(Arc::clone(&self.gateway), background.clone()));
        let reporter = tokio::spawn(report_pressure(
            self.http_metrics.clone(),
            Arc::clone(self.listener.admission()),
            self.host.pools(),
            background.clone(),
        ));
        let health = HealthState {
            db: Arc::clone(&self.platform.db),
            stream: Arc::clone(&self.platform.stream),
            host: self.host.health(),
            saturation_threshold: config.functions.saturation_threshold,
        };
        let metrics = MetricsState {
            registry: Arc::new(std::mem::take(&mut self.metrics)),
            access: config.server.metrics,
        };
        let functions = std::mem::take(&mut self.functions);
        let routes = health::router(health, metrics)
            .merge(crate::infra::aws_json::endpoint(
                vec![
                    Arc::new(UserPoolService(Arc::clone(&self.identity))),
                    Arc::new(IdentityPoolService {
                        pools: Arc::clone(&self.identity_pools),
                        identity: Arc::clone(&self.identity),
                    }),
                ],
                vec![Arc::new(crate::services::sts::Sts::new(Arc::clone(&self.identity_pools)))],
                cognito_protocol::MAX_BODY_BYTES,
            ))
            .merge(cognito_protocol::issuer_routes(Arc::clone(&self.identity)))
            .merge(crate::services::cognito::identity_pool::protocol::issuer_routes(Arc::clone(
                &self.identity_pools,
            )))
            .merge(functions);
        // Around the whole router, once per request, rather than around each route.
        let origin = tower::ServiceBuilder::new()
            .map_response(|response: axum::http::Response<_>| response.map(axum::body::Body::new))
            .layer(SetRequestIdLayer::x_request_id(http::RequestIds::new()))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .service(Arc::clone(&self.edge).serve_unrouted(routes));
        let router = Arc::clone(&self.edge).in_front_of(origin);
        tracing::info!(address = %self.listener.local_addr(), "listening");
        // One shutdown signal for both listeners.
        let stopping = CancellationToken::new();
        let signal = {
            let stopping = stopping.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopping.cancel();
            })
        };
        let s3 = self.s3.take().map(|s3| tokio::spawn(s3.serve(stopping.clone().cancelled_owned())));
        self.listener.serve(router, stopping.cancelled()).await;
        if let Some(s3) = s3 {
            let _ = s3.await;
        }
        signal.abort();
        tracing::info!("shutting down: finishing in-flight invocations");
        self.gateway.connections().close_all();
        background.cancel();
        let _ = tokio::join!(sweeper, trimmer, pruner, forgetter, reporter, gateway);
        self.host.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// One span per request, carrying the request id set by `SetRequestIdLayer`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id =
        request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
}

/// Every 10 s in which a connection was refused, a timeout fired or a request found no function
/// slot, one warning says so with the counts, so an operator sees an attack or an overload in
/// the log as it happens (`/metrics` has the running totals).
async fn report_pressure(
    metrics: HttpMetrics,
    admission: Arc<crate::infra::http::admission::Admission>,
    pools: Vec<Arc<crate::services::functions::slots::Pool>>,
    stop: CancellationToken,
) {
    use crate::infra::http::metrics::{Refusal, Timeout};
    let totals = || {
        let timeouts = Timeout::ALL.map(|kind| metrics.timeouts(kind));
        let refused = Refusal::ALL.map(|reason| metrics.refusals(reason));
        let rejected: u64 = pools.iter().map(|pool| pool.rejections()).sum();
        (timeouts, refused, rejected)
    };
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(10));
    let mut last = totals();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = totals();
        if now == last {
            continue;
        }
        let delta = |new: u64, old: u64| new - old;
        let connections = admission.snapshot();
        let slots: Vec<String> = pools
            .iter()
            .map(|pool| format!("{} {}/{}", pool.name(), pool.in_use(), pool.capacity()))
            .collect();
        tracing::warn!(
            connections = connections.open,
            busiest_client = connections.busiest,
            clients_at_limit = connections.at_limit,
            refused_per_address = delta(now.1[0], last.1[0]),
            refused_total = delta(now.1[1], last.1[1]),
            header_timeouts = delta(now.0[0], last.0[0]),
            idle_timeouts = delta(now.0[1], last.0[1]),
            body_timeouts = delta(now.0[2], last.0[2]),
            send_timeouts = delta(now.0[3], last.0[3]),
            no_free_slot = delta(now.2, last.2),
            slots = %slots.join(", "),
            "HTTP pressure in the last 10 s"
        );
        last = now;
    }
}

/// The gateway's upkeep every second (usage counts written, idle limiter state forgotten),
/// and once more when stopping, so quotas survive the restart.
async fn keep_up_gateway(gateway: Arc<crate::services::gateway::Gateway>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => gateway.upkeep().await,
        }
    }
    gateway.upkeep().await;
}

async fn sweep_expired_items(platform: Arc<Platform>, every: std::time::Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let swept = platform.sweep_expired().await;
                if swept > 0 {
                    tracing::info!(swept, "expired items deleted");
                }
            }
        }
    }
}

/// Keeps the attempt limiters' memory bounded by forgetting idle keys.
/// Expired credentials are kept a day, so that clients still using them hear `ExpiredToken`
/// rather than `InvalidAccessKeyId`, then forgotten.
async fn forget_expired_credentials(
    credentials: Arc<CredentialStore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    const KEPT_FOR: i64 = 24 * 3600;
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let before = clock.now_millis().div_euclid(1000) - KEPT_FOR;
                match credentials.sweep_expired(before).await {
                    Ok(0) => {}
                    Ok(forgotten) => tracing::debug!(forgotten, "expired credentials forgotten"),
                    Err(error) => tracing::warn!(error = %error_chain(&error), "cannot forget expired credentials"),
                }
            }
        }
    }
}

async fn prune_throttles(identity: Arc<Identity>, subscriptions: SubscriberState, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                identity.throttle.prune();
                subscriptions.prune();
            }
        }
    }
}

async fn trim_stream(
    platform: Arc<Platform>,
    config: crate::ports::stream::StreamConfig,
    consumers: Vec<String>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(config.trim_interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(error) = platform.stream.trim(config.retention, &consumers).await {
                    tracing::error!(error = %error_chain(&error), "stream trimming failed");
                }
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
