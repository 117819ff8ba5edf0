//! The system's own endpoints, for what watches it: `/healthz` and `/readyz` for load balancers
//! and Route 53-style health checks, `/metrics` for Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::infra::http::{MetricsAccess, Problem};
use crate::infra::sqlite::Database;
use crate::infra::telemetry::error_chain;
use crate::ports::stream::StreamLog;
use crate::services::functions::HostHealth;

#[derive(Debug, Clone)]
pub(crate) struct HealthState {
    pub db: Arc<Database>,
    pub stream: Arc<StreamLog>,
    pub host: HostHealth,
    /// A pool without a free slot for this long makes the server unready.
    pub saturation_threshold: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct MetricsState {
    pub registry: Arc<Registry>,
    pub access: MetricsAccess,
}

pub(crate) fn router(health: HealthState, metrics: MetricsState) -> Router {
    let health =
        Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(health);
    if metrics.access == MetricsAccess::Off {
        return health;
    }
    health.merge(Router::new().route("/metrics", get(render_metrics)).with_state(metrics))
}

/// Prometheus's text format (OpenMetrics), to the clients `server.metrics` allows.
async fn render_metrics(
    State(metrics): State<MetricsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if metrics.access == MetricsAccess::Loopback && !peer.ip().to_canonical().is_loopback() {
        return Problem::new(StatusCode::FORBIDDEN, "Metrics are served to loopback clients only.")
            .into_response();
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        return Problem::internal(&error).into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
struct Readiness {
    status: &'static str,
    database: &'static str,
    consumers: Vec<ConsumerReadiness>,
    functions: Vec<PoolReadiness>,
    /// Why the server is unavailable, when it is.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PoolReadiness {
    pool: &'static str,
    slots: usize,
    in_use: usize,
    /// How long the pool has had no free slot (0 while one is free).
    saturated_ms: u128,
}

#[derive(Debug, Serialize)]
struct ConsumerReadiness {
    name: String,
    running: bool,
    pending: u64,
    dead_letters: u64,
    lost: u64,
}

/// Ready when the database answers, every consumer is running, and neither function pool has
/// been without a free slot for longer than the saturation threshold (requests would wait, and
/// consumers would make no progress). Lag, dead letters and records lost to retention are
/// reported for operators but do not make the server unready.
async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Readiness>) {
    let database_ok = match state.db.ping() {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "readiness: database unavailable");
            false
        }
    };
    let stopped = state.host.stopped();
    let statuses = if database_ok { state.stream.consumers().unwrap_or_default() } else { Vec::new() };
    let active = state.host.names();
    let consumers: Vec<ConsumerReadiness> = statuses
        .into_iter()
        .filter(|status| active.contains(&status.name))
        .map(|status| ConsumerReadiness {
            running: !stopped.contains(&status.name),
            name: status.name,
            pending: status.pending,
            dead_letters: status.dead_letters,
            lost: status.lost,
        })
        .collect();
    let mut problems = Vec::new();
    if !database_ok {
        problems.push("the database does not answer".to_owned());
    }
    problems.extend(stopped.iter().map(|name| format!("function `{name}` stopped")));
    let mut functions = Vec::new();
    for pool in state.host.pools() {
        let saturated = pool.saturated_for();
        if let Some(held) = saturated.filter(|held| *held >= state.saturation_threshold) {
            problems.push(format!("no free {} function slot for {:.1} s", pool.name(), held.as_secs_f64()));
        }
        functions.push(PoolReadiness {
            pool: pool.name(),
            slots: pool.capacity(),
            in_use: pool.in_use(),
            saturated_ms: saturated.map_or(0, |held| held.as_millis()),
        });
    }
    if !problems.is_empty() {
        tracing::warn!(problems = ?problems, "readiness: unavailable");
    }
    let ready = problems.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database: if database_ok { "ok" } else { "unavailable" },
        consumers,
        functions,
        problems,
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
