//! The request context: the condition keys a request carries (`cognito-identity.amazonaws.com:sub`,
//! `s3:prefix`, …), each with one value or a set. Keys compare case-insensitively, as in AWS;
//! values exactly.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
    /// Which keys hold sets (`ForAnyValue:`/`ForAllValues:` keys), rather than one value.
    sets: std::collections::HashSet<String>,
}

impl Context {
    /// Adds a single-valued key.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
        self
    }

    /// Adds a key that holds a set of values.
    pub fn with_set(mut self, key: &str, values: impl IntoIterator<Item = String>) -> Self {
        let key = key.to_lowercase();
        self.values.insert(key.clone(), values.into_iter().collect());
        self.sets.insert(key);
        self
    }

    /// The values of `key`, if the request has it.
    pub(super) fn values(&self, key: &str) -> Option<&[String]> {
        self.values.get(&key.to_lowercase()).map(Vec::as_slice)
    }

    /// The value of a single-valued key: what a policy variable can stand for.
    pub(super) fn single(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        if self.sets.contains(&key) {
            return None;
        }
        match self.values.get(&key).map(Vec::as_slice) {
            Some([value]) => Some(value),
            _ => None,
        }
    }
}
