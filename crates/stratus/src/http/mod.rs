//! The HTTP listener's routes that belong to the platform itself: health checks for load
//! balancers and Route 53-style probes. Product routes (site, API, identity) join this router in
//! later components.

mod limit;
mod page;
mod problem;
mod request_id;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub use limit::AddressLimit;
pub use page::page;
pub use problem::Problem;
pub use request_id::RequestIds;

use crate::functions::HostHealth;
use crate::sqlite::Database;
use crate::stream::StreamLog;
use crate::telemetry::error_chain;

#[derive(Debug, Clone)]
pub struct HealthState {
    pub db: Arc<Database>,
    pub stream: Arc<StreamLog>,
    pub host: HostHealth,
}

pub fn router(state: HealthState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
struct Readiness {
    status: &'static str,
    database: &'static str,
    consumers: Vec<ConsumerReadiness>,
}

#[derive(Debug, Serialize)]
struct ConsumerReadiness {
    name: String,
    running: bool,
    pending: u64,
    dead_letters: u64,
    lost: u64,
}

/// Ready when the database answers and every consumer is running. Lag, dead letters and records
/// lost to retention are reported for operators but do not make the server unready.
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
    let ready = database_ok && stopped.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database: if database_ok { "ok" } else { "unavailable" },
        consumers,
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
