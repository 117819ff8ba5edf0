//! What every component's configuration section shares: the error its validation returns, and
//! the type of a secret setting. Each
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

/// A secret setting (a password, a secret key): read and written as its text, never shown by
/// `Debug`, so a configuration can be logged whole.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown_but_round_trips_as_its_text() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        let json = serde_json::to_string(&secret).expect("serialize");
        assert_eq!(json, "\"hunter2\"");
        assert_eq!(serde_json::from_str::<Secret>(&json).expect("deserialize").expose(), "hunter2");
    }
}
