//! `/v1/subscribers`: anyone subscribes (JSON from scripts and apps, a form post from the site,
//! cross-origin allowed), throttled per client address; authors list and export subscribers;
//! a signed link unsubscribes. Browser routes answer with pages, the rest with JSON.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower_http::cors::{Any, CorsLayer};

use super::subscribers::{Address, SubscriberError, SubscriberStore, UnsubscribeTokens};
use crate::apps::blog::BlogConfig;
use crate::infra::http::{AddressLimit, Problem, page};
use crate::services::cognito::authorizer::{Authorizer, Principal};

/// Largest subscription request: an address and some form overhead.
pub const MAX_SUBSCRIBE_BODY: usize = 4 * 1024;
/// Rows per page of the CSV export's reads.
const EXPORT_PAGE: usize = 500;

#[derive(Debug, Clone)]
pub struct SubscriberState(Arc<SubscriberContext>);

pub struct SubscriberContext {
    pub subscribers: SubscriberStore,
    pub tokens: UnsubscribeTokens,
    pub authorizer: Arc<Authorizer>,
    pub config: BlogConfig,
    per_address: AddressLimit,
}

impl std::fmt::Debug for SubscriberContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberContext").finish_non_exhaustive()
    }
}

impl SubscriberState {
    pub fn new(
        subscribers: SubscriberStore,
        tokens: UnsubscribeTokens,
        authorizer: Arc<Authorizer>,
        config: BlogConfig,
    ) -> Self {
        let per_address = AddressLimit::per_minute(config.subscribe_per_address_per_minute);
        Self(Arc::new(SubscriberContext { subscribers, tokens, authorizer, config, per_address }))
    }

    /// Forgets idle addresses so the limiter's memory stays bounded.
    pub fn prune(&self) {
        self.0.per_address.prune();
    }
}

impl std::ops::Deref for SubscriberState {
    type Target = SubscriberContext;

    fn deref(&self) -> &SubscriberContext {
        &self.0
    }
}

impl FromRef<SubscriberState> for Arc<Authorizer> {
    fn from_ref(state: &SubscriberState) -> Self {
        Arc::clone(&state.authorizer)
    }
}

pub fn router(state: SubscriberState) -> Router {
    // The site may live on another origin than the API (a CDN in front); a subscription carries
    // no credentials, so any origin may post one.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/v1/subscribers", post(subscribe).layer(cors).get(list_subscribers))
        .route("/v1/subscribers/unsubscribe", get(unsubscribe_page).post(unsubscribe_one_click))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SUBSCRIBE_BODY))
        .with_state(state)
}

impl From<SubscriberError> for Problem {
    fn from(error: SubscriberError) -> Self {
        match &error {
            SubscriberError::InvalidCursor | SubscriberError::InvalidToken => {
                Problem::new(StatusCode::BAD_REQUEST, error.to_string())
            }
            SubscriberError::Signing(_) | SubscriberError::Table(_) | SubscriberError::Corrupt(_) => {
                Problem::internal(&error)
            }
        }
    }
}

/// A subscription: the address new posts go to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct SubscribeBody {
    email: Option<String>,
}

/// A subscription accepted (the same answer whether or not the address was subscribed).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Subscribed {
    email: String,
    /// Always `subscribed`.
    status: String,
}

/// A page of subscribers, oldest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct SubscriberList {
    items: Vec<super::subscribers::Subscriber>,
    next_cursor: Option<String>,
}

/// Who asked: a browser posting the site's form gets pages, anything else JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    Browser,
    Api,
}

impl Audience {
    fn refuse(self, status: StatusCode, message: &str) -> Response {
        match self {
            Self::Browser => page(status, "Subscription not accepted", message),
            Self::Api => Problem::new(status, message).into_response(),
        }
    }
}

#[utoipa::path(post, path = "/v1/subscribers", tag = "subscribers",
    request_body(content((SubscribeBody = "application/json"), (SubscribeBody = "application/x-www-form-urlencoded")),
        description = "JSON from apps; the site's form posts a form and gets a page back"),
    responses((status = 202, description = "Subscribed (or already)", body = Subscribed),
        (status = 200, description = "The form's thank-you page", content_type = "text/html"),
        (status = 400, description = "Not an email address (a page for the form)", content((crate::infra::http::ProblemSchema = "application/problem+json"), (String = "text/html"))),
        (status = 415, description = "Neither JSON nor a form", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "Too many subscriptions from this address (a page for the form)",
            content((crate::infra::http::ProblemSchema = "application/problem+json"), (String = "text/html")), headers(("Retry-After" = u64)))))]
async fn subscribe(
    State(state): State<SubscriberState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let (audience, parsed) = match content_type.as_str() {
        "application/x-www-form-urlencoded" => (
            Audience::Browser,
            serde_urlencoded::from_bytes::<SubscribeBody>(&body).map_err(|e| e.to_string()),
        ),
        "application/json" => {
            (Audience::Api, serde_json::from_slice::<SubscribeBody>(&body).map_err(|e| e.to_string()))
        }
        _ => {
            let message = "Send the address as JSON or as a form.";
            return Audience::Api.refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
        }
    };
    if let Err(wait) = state.per_address.check(peer.ip()) {
        let wait = crate::infra::http::retry_after_seconds(wait);
        let mut response = audience.refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many subscriptions from this address; try again later.",
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let body = match parsed {
        Ok(body) => body,
        Err(error) => {
            return audience.refuse(StatusCode::BAD_REQUEST, &format!("Malformed request: {error}"));
        }
    };
    let address = match Address::parse(body.email.as_deref().unwrap_or_default()) {
        Ok(address) => address,
        Err(error) => return audience.refuse(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    // New or not, the answer is the same: it must not tell who is subscribed.
    if let Err(error) = state.subscribers.subscribe(&address).await {
        return match audience {
            Audience::Browser => {
                tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "subscription failed");
                page(StatusCode::INTERNAL_SERVER_ERROR, "Subscription failed", "Please try again later.")
            }
            Audience::Api => Problem::from(error).into_response(),
        };
    }
    match audience {
        Audience::Browser => page(
            StatusCode::OK,
            "Thank you for subscribing",
            &format!("New posts of {} will come to {address}.", state.config.title),
        ),
        Audience::Api => {
            let body = Subscribed { email: address.to_string(), status: "subscribed".into() };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParameters {
    /// Subscribers per page (50 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// `json` (a page) or `csv` (every subscriber).
    format: Option<String>,
}

/// Authors only: a page of subscribers as JSON, or every subscriber as CSV
/// (`?format=csv` or `Accept: text/csv`).
#[utoipa::path(get, path = "/v1/subscribers", tag = "subscribers", params(ListParameters), security(("user_pool" = [])),
    responses((status = 200, description = "A page of subscribers, or all as CSV", content(
            (SubscriberList = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is invalid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "No valid access token", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not an author", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn list_subscribers(
    State(state): State<SubscriberState>,
    principal: Principal,
    headers: HeaderMap,
    parameters: Result<Query<ListParameters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    principal.require_group(&state.config.authors_group)?;
    let Query(parameters) = parameters.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let accepts_csv =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"));
    match parameters.format.as_deref() {
        Some("csv") => return export(&state).await,
        Some("json") => {}
        None if accepts_csv => return export(&state).await,
        None => {}
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format `{other}`: json or csv"),
            ));
        }
    }
    let limit = parameters.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "`limit` must be between 1 and 1000"));
    }
    let page = state.subscribers.list(limit, parameters.cursor.as_deref()).await?;
    Ok(Json(SubscriberList { items: page.subscribers, next_cursor: page.next }).into_response())
}

async fn export(state: &SubscriberState) -> Result<Response, Problem> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut cursor = None;
    loop {
        let page = state.subscribers.list(EXPORT_PAGE, cursor.as_deref()).await?;
        for subscriber in &page.subscribers {
            writer.serialize(subscriber).map_err(|e| Problem::internal(&e))?;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let bytes = writer.into_inner().map_err(|e| Problem::internal(e.error()))?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"subscribers.csv\""),
    ];
    Ok((headers, bytes).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenParameter {
    /// The token of the link in the email.
    token: Option<String>,
}

/// The link in every email: removes the subscriber and says so.
#[utoipa::path(get, path = "/v1/subscribers/unsubscribe", tag = "subscribers", params(TokenParameter),
    responses((status = 200, description = "Unsubscribed: a page saying so", content_type = "text/html"),
        (status = 400, description = "The link is not valid: a page saying so", content_type = "text/html")))]
async fn unsubscribe_page(
    State(state): State<SubscriberState>,
    Query(parameter): Query<TokenParameter>,
) -> Response {
    match unsubscribe(&state, parameter.token.as_deref()).await {
        Ok(address) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!("{address} will receive no more emails from {}.", state.config.title),
        ),
        Err(SubscriberError::InvalidToken) => page(
            StatusCode::BAD_REQUEST,
            "This unsubscribe link is not valid",
            "It may have expired or been altered. Use the link in a more recent email.",
        ),
        Err(error) => {
            tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "unsubscribe failed");
            page(StatusCode::INTERNAL_SERVER_ERROR, "Unsubscribe failed", "Please try again later.")
        }
    }
}

/// RFC 8058 one-click unsubscribe, posted by mail clients.
#[utoipa::path(post, path = "/v1/subscribers/unsubscribe", tag = "subscribers", params(TokenParameter),
    responses((status = 204, description = "Unsubscribed (RFC 8058 one-click)"), (status = 400, description = "The link is not valid", body = crate::infra::http::ProblemSchema, content_type = "application/problem+json")))]
async fn unsubscribe_one_click(
    State(state): State<SubscriberState>,
    Query(parameter): Query<TokenParameter>,
) -> Result<StatusCode, Problem> {
    unsubscribe(&state, parameter.token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unsubscribe(state: &SubscriberState, token: Option<&str>) -> Result<Address, SubscriberError> {
    let address = state.tokens.verify(token.unwrap_or_default())?;
    // Idempotent: a second click finds nothing to remove and says the same.
    state.subscribers.unsubscribe(&address).await?;
    tracing::info!(%address, "unsubscribed");
    Ok(address)
}

/// `/v1/subscribers` in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(subscribe, list_subscribers, unsubscribe_page, unsubscribe_one_click),
    components(schemas(SubscribeBody, Subscribed, SubscriberList, super::subscribers::Subscriber, crate::infra::http::ProblemSchema)),
    tags((name = "subscribers", description = "Subscriptions to new posts by email."))
)]
pub struct SubscribersApi;
