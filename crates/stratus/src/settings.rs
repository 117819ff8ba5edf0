//! What every component's configuration section shares: the error its validation returns. Each
//! component owns its section (`http::ServerConfig`, `blog::BlogConfig`, …) and checks it; the
//! aggregate `config::Config` only layers the sources and calls the checks. This module depends
//! on nothing else in the crate, so every component can use it.

/// A setting that cannot be used, naming its key as the user writes it (`stream.batch_size`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` {problem}")]
pub struct Invalid {
    pub key: &'static str,
    pub problem: String,
}

/// `Err(Invalid)` for `key`, the shape every section's `validate` returns.
pub fn invalid<T>(key: &'static str, problem: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid { key, problem: problem.into() })
}
