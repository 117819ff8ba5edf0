//! Reading a stored item back into a domain value. An attribute that is missing, of another
//! type, or of a value the domain does not know is an error naming it, never a silent default:
//! an item that does not read back is corrupt, and the caller says so.

use std::str::FromStr;

use super::{AttributeValue, Item};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("attribute `{0}` is missing")]
    Missing(String),
    #[error("attribute `{name}` is not {expected}")]
    Mistyped { name: String, expected: &'static str },
    #[error("attribute `{name}` holds `{value}`, which is not {expected}")]
    Invalid { name: String, value: String, expected: String },
}

impl AttributeError {
    /// A value of the right type that the domain refuses.
    pub fn invalid(name: &str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::Invalid { name: name.to_owned(), value: value.into(), expected: expected.into() }
    }
}

/// A string attribute that must be there.
pub fn string(item: &Item, name: &str) -> Result<String, AttributeError> {
    optional_string(item, name)?.ok_or_else(|| AttributeError::Missing(name.to_owned()))
}

/// A string attribute that may be absent.
pub fn optional_string(item: &Item, name: &str) -> Result<Option<String>, AttributeError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
        Some(_) => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a string" }),
    }
}

/// A number attribute that must be there, as `T` (`u64`, `u32`, …).
pub fn number<T: FromStr>(item: &Item, name: &str) -> Result<T, AttributeError> {
    optional_number(item, name)?.ok_or_else(|| AttributeError::Missing(name.to_owned()))
}

/// A number attribute that may be absent.
pub fn optional_number<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>, AttributeError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(number)) => number
            .as_str()
            .parse()
            .map(Some)
            .map_err(|_| AttributeError::invalid(name, number.as_str(), std::any::type_name::<T>())),
        Some(_) => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a number" }),
    }
}

/// A string set; absent is empty (DynamoDB stores no empty sets).
pub fn string_set(item: &Item, name: &str) -> Result<Vec<String>, AttributeError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::Ss(set)) => Ok(set.iter().cloned().collect()),
        Some(_) => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a string set" }),
    }
}

/// A boolean attribute that must be there.
pub fn boolean(item: &Item, name: &str) -> Result<bool, AttributeError> {
    match item.get(name) {
        None => Err(AttributeError::Missing(name.to_owned())),
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(_) => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a boolean" }),
    }
}

/// A list of strings (order kept, unlike a set); absent is empty.
pub fn strings(item: &Item, name: &str) -> Result<Vec<String>, AttributeError> {
    let mistyped = || AttributeError::Mistyped { name: name.to_owned(), expected: "a list of strings" };
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => {
            list.iter().map(|value| value.as_s().map(str::to_owned).ok_or_else(mistyped)).collect()
        }
        Some(_) => Err(mistyped()),
    }
}

/// A list of maps that may be absent (absent is empty).
pub fn maps<'a>(item: &'a Item, name: &str) -> Result<Vec<&'a Item>, AttributeError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|value| match value {
                AttributeValue::M(entry) => Ok(entry),
                _ => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a list of maps" }),
            })
            .collect(),
        Some(_) => Err(AttributeError::Mistyped { name: name.to_owned(), expected: "a list" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item;

    #[test]
    fn missing_mistyped_and_unparsable_attributes_are_errors_naming_them() {
        let stored = item! { "title" => "Hello", "version" => 3, "size" => -1 };
        assert_eq!(string(&stored, "title"), Ok("Hello".to_owned()));
        assert_eq!(number::<u64>(&stored, "version"), Ok(3));
        assert_eq!(optional_string(&stored, "cover"), Ok(None));
        assert_eq!(string(&stored, "cover"), Err(AttributeError::Missing("cover".into())));
        assert!(matches!(string(&stored, "version"), Err(AttributeError::Mistyped { .. })));
        assert!(matches!(number::<u64>(&stored, "size"), Err(AttributeError::Invalid { .. })));
        assert_eq!(string_set(&stored, "tags"), Ok(Vec::new()));
    }
}
