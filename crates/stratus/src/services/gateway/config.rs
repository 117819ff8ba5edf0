//! `[gateway]`: the stage's throttles, usage plans and response cache in front of the APIs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::settings::{Invalid, invalid};

/// API Gateway's longest cache lifetime.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// How long a GET response may be answered from memory for the same caller (`0s`: never;
    /// at most 1h). Changes to the data behind it end it sooner.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Per-route lifetimes instead of `cache_ttl`, by `"GET /v1/todos/{id}"`.
    pub cache_ttls: BTreeMap<String, Lifetime>,
    /// Memory for cached responses, in bytes.
    pub cache_bytes: u64,
    /// The stage's throttle over all its APIs: steady requests per second, and the burst
    /// (API Gateway's defaults: 10,000 and 5,000).
    pub rate: u32,
    pub burst: u32,
    /// Per-method throttles, by `"GET /v1/todos"` (the route as the API declares it).
    pub methods: BTreeMap<String, Throttle>,
    /// Usage plans by name. With any, the APIs that opt in (the todos API) require an API key
    /// (`x-api-key`) of one of them; keys are made with `stratus api-keys create`.
    pub plans: BTreeMap<String, PlanConfig>,
    /// The user-pool group whose members manage API keys over `/v1/api-keys`.
    pub admins_group: String,
    /// The WebSocket API at `/v1/ws`.
    pub websocket: super::websocket::WebSocketConfig,
    /// The API's id in the ARNs IAM policies name methods by:
    /// `arn:aws:execute-api:<region>:<account>:<api_id>/<stage>/<METHOD>/<path>`.
    pub api_id: String,
    /// Which authorizer guards a route, by `"GET /v1/todos"` (`ANY` for every method):
    /// `user_pool` (an access token, checked by the API — every route's default), `iam` (SigV4
    /// with an identity's temporary credentials, allowed by `execute-api:Invoke`), or the name of
    /// one of `authorizers`.
    pub authorization: BTreeMap<String, String>,
    /// Function authorizers (API Gateway's Lambda authorizers) by name.
    pub authorizers: BTreeMap<String, FunctionAuthorizerConfig>,
}

/// A function authorizer: a function registered with the host answers who the caller is and
/// which methods they may invoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionAuthorizerConfig {
    /// The registered authorizer function.
    pub function: String,
    /// `token`: the function receives the one identity source's value; `request`: the request's
    /// headers, query and path parameters.
    #[serde(default)]
    pub kind: AuthorizerKind,
    /// Where the caller's identity is: `header.<Name>` or `query.<name>`. A request without
    /// every one of them is refused (401) without asking the function; their values key the
    /// cached answers.
    #[serde(default = "default_identity_source")]
    pub identity_source: Vec<String>,
    /// How long an answer is reused for the same identity (`0s`: never; at most 1h).
    #[serde(default = "default_authorizer_ttl", with = "humantime_serde")]
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizerKind {
    #[default]
    Token,
    Request,
}

/// Where an identity source is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    Header(String),
    Query(String),
}

impl IdentitySource {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.split_once('.') {
            Some(("header", name)) if !name.is_empty() => Some(Self::Header(name.to_ascii_lowercase())),
            Some(("query", name)) if !name.is_empty() => Some(Self::Query(name.to_owned())),
            _ => None,
        }
    }
}

/// The names `[gateway.authorization]` gives the built-in authorizers.
pub(crate) const USER_POOL: &str = "user_pool";
pub(crate) const IAM: &str = "iam";

fn default_identity_source() -> Vec<String> {
    vec!["header.Authorization".into()]
}

/// API Gateway's default authorizer cache lifetime.
fn default_authorizer_ttl() -> Duration {
    Duration::from_secs(300)
}

/// A duration in a map (`"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lifetime(#[serde(with = "humantime_serde")] pub Duration);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub rate: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Steady requests per second of one key, and its burst.
    pub rate: u32,
    pub burst: u32,
    /// Requests one key may make per `period`; none: unlimited.
    #[serde(default)]
    pub quota: Option<u64>,
    #[serde(default)]
    pub period: QuotaPeriod,
}

/// A quota's period, in UTC: from midnight, from Monday's midnight, from the first of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    #[default]
    Day,
    Week,
    Month,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(300),
            cache_ttls: BTreeMap::new(),
            cache_bytes: 32 * 1024 * 1024,
            rate: 10_000,
            burst: 5_000,
            methods: BTreeMap::new(),
            plans: BTreeMap::new(),
            admins_group: "admins".into(),
            websocket: super::websocket::WebSocketConfig::default(),
            api_id: "stratus".into(),
            authorization: BTreeMap::new(),
            authorizers: BTreeMap::new(),
        }
    }
}

fn check_throttle(key: &'static str, rate: u32, burst: u32) -> Result<(), Invalid> {
    if rate == 0 || burst == 0 {
        return invalid(key, "rate and burst must be at least 1");
    }
    Ok(())
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let ttls = std::iter::once(self.cache_ttl).chain(self.cache_ttls.values().map(|ttl| ttl.0));
        if ttls.into_iter().any(|ttl| ttl > MAX_CACHE_TTL) {
            return invalid("gateway.cache_ttl", "must be at most 1h, as on API Gateway");
        }
        for route in self.cache_ttls.keys().chain(self.methods.keys()).chain(self.authorization.keys()) {
            let well_formed = route.split_once(' ').is_some_and(|(method, path)| {
                method.chars().all(|c| c.is_ascii_uppercase()) && !method.is_empty() && path.starts_with('/')
            });
            if !well_formed {
                return invalid("gateway.methods", format!("`{route}` is not `METHOD /route`"));
            }
        }
        let websocket = &self.websocket;
        if websocket.idle_timeout.is_zero() || websocket.ping_interval.is_zero() {
            return invalid("gateway.websocket.idle_timeout", "and ping_interval must be positive");
        }
        if websocket.max_frame_bytes < 1024 || websocket.connections_per_user == 0 || websocket.queue == 0 {
            return invalid(
                "gateway.websocket",
                "max_frame_bytes must be at least 1 KiB; connections_per_user and queue at least 1",
            );
        }
        if self.admins_group.is_empty() {
            return invalid("gateway.admins_group", "must not be empty");
        }
        self.validate_authorizers()?;
        check_throttle("gateway.rate", self.rate, self.burst)?;
        for throttle in self.methods.values() {
            check_throttle("gateway.methods", throttle.rate, throttle.burst)?;
        }
        for plan in self.plans.values() {
            check_throttle("gateway.plans", plan.rate, plan.burst)?;
            if plan.quota == Some(0) {
                return invalid("gateway.plans", "a quota must be at least 1 (leave it out for none)");
            }
        }
        Ok(())
    }

    fn validate_authorizers(&self) -> Result<(), Invalid> {
        if self.api_id.is_empty()
            || !self.api_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return invalid("gateway.api_id", "must be lowercase letters and digits");
        }
        for (route, name) in &self.authorization {
            if name != USER_POOL && name != IAM && !self.authorizers.contains_key(name) {
                return invalid(
                    "gateway.authorization",
                    format!(
                        "`{route}`: `{name}` is neither `user_pool`, `iam` nor one of [gateway.authorizers]"
                    ),
                );
            }
        }
        for (name, authorizer) in &self.authorizers {
            let key = "gateway.authorizers";
            if name == USER_POOL || name == IAM {
                return invalid(key, format!("`{name}` is the name of a built-in authorizer"));
            }
            if authorizer.function.is_empty() {
                return invalid(
                    key,
                    format!("`{name}`: `function` must name a registered authorizer function"),
                );
            }
            let sources: Option<Vec<IdentitySource>> =
                authorizer.identity_source.iter().map(|source| IdentitySource::parse(source)).collect();
            match (authorizer.kind, sources.as_deref()) {
                (_, None | Some([])) => {
                    return invalid(
                        key,
                        format!("`{name}`: identity_source entries are `header.<Name>` or `query.<name>`"),
                    );
                }
                (AuthorizerKind::Token, Some([IdentitySource::Header(_)])) | (AuthorizerKind::Request, _) => {
                }
                (AuthorizerKind::Token, _) => {
                    return invalid(key, format!("`{name}`: a token authorizer reads exactly one header"));
                }
            }
            if authorizer.ttl > MAX_CACHE_TTL {
                return invalid(key, format!("`{name}`: ttl must be at most 1h, as on API Gateway"));
            }
        }
        Ok(())
    }
}
