//! Lambda's event filtering patterns, evaluated against a record's JSON: a consumer receives only
//! the records matching one of its patterns (e.g. INSERTs of items whose `type` is `subscriber`:
//! `{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["subscriber"]}}}}`).
//!
//! Supported: literal values (strings, numbers, booleans, null), and the operators `prefix`,
//! `suffix`, `equals-ignore-case`, `anything-but`, `numeric` and `exists`. No crate implements
//! this pattern language, hence this module.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event filter pattern at `{path}`: {problem}")]
pub struct FilterError {
    pub path: String,
    pub problem: String,
}

/// Patterns combined with OR; an empty filter matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFilter {
    patterns: Vec<Map<String, Value>>,
}

impl EventFilter {
    pub fn new(patterns: impl IntoIterator<Item = Value>) -> Result<Self, FilterError> {
        let mut checked = Vec::new();
        for pattern in patterns {
            let Value::Object(map) = pattern else {
                return Err(error("", "a pattern must be a JSON object"));
            };
            validate_object(&map, "")?;
            checked.push(map);
        }
        Ok(Self { patterns: checked })
    }

    /// Parses one pattern from its JSON text.
    pub fn parse(json: &str) -> Result<Self, FilterError> {
        let value: Value = serde_json::from_str(json).map_err(|e| error("", &format!("not JSON: {e}")))?;
        Self::new([value])
    }

    pub fn matches(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|pattern| object_matches(pattern, Some(record)))
    }
}

fn error(path: &str, problem: &str) -> FilterError {
    FilterError { path: path.to_owned(), problem: problem.to_owned() }
}

fn validate_object(map: &Map<String, Value>, path: &str) -> Result<(), FilterError> {
    for (key, value) in map {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match value {
            Value::Object(inner) => validate_object(inner, &here)?,
            Value::Array(matchers) => {
                if matchers.is_empty() {
                    return Err(error(&here, "a list of matchers must not be empty"));
                }
                for matcher in matchers {
                    validate_matcher(matcher, &here)?;
                }
            }
            _ => return Err(error(&here, "leaf values must be lists of matchers")),
        }
    }
    Ok(())
}

fn validate_matcher(matcher: &Value, path: &str) -> Result<(), FilterError> {
    let Value::Object(operator) = matcher else { return Ok(()) };
    let [(name, operand)] = operator.iter().collect::<Vec<_>>()[..] else {
        return Err(error(path, "an operator object has exactly one key"));
    };
    let valid = match name.as_str() {
        "prefix" | "suffix" | "equals-ignore-case" => operand.is_string(),
        "exists" => operand.is_boolean(),
        "anything-but" => !operand.is_object() || operand.get("prefix").is_some_and(Value::is_string),
        "numeric" => numeric_conditions(operand).is_some(),
        _ => return Err(error(path, &format!("unknown operator `{name}`"))),
    };
    if valid { Ok(()) } else { Err(error(path, &format!("bad operand for `{name}`"))) }
}

fn object_matches(pattern: &Map<String, Value>, value: Option<&Value>) -> bool {
    pattern.iter().all(|(key, expected)| {
        let field = value.and_then(|value| value.get(key));
        match expected {
            Value::Object(inner) => object_matches(inner, field),
            Value::Array(matchers) => matchers.iter().any(|matcher| matcher_matches(matcher, field)),
            _ => false,
        }
    })
}

fn matcher_matches(matcher: &Value, field: Option<&Value>) -> bool {
    // A list field matches when any of its elements does.
    if let Some(Value::Array(elements)) = field {
        return elements.iter().any(|element| matcher_matches(matcher, Some(element)));
    }
    match matcher {
        Value::Object(operator) => {
            let Some((name, operand)) = operator.iter().next() else { return false };
            operator_matches(name, operand, field)
        }
        Value::Number(expected) => {
            field.and_then(Value::as_f64).zip(expected.as_f64()).is_some_and(|(a, b)| a == b)
        }
        literal => field == Some(literal),
    }
}

fn operator_matches(name: &str, operand: &Value, field: Option<&Value>) -> bool {
    let text = field.and_then(Value::as_str);
    match name {
        "exists" => operand.as_bool() == Some(field.is_some()),
        "prefix" => text.zip(operand.as_str()).is_some_and(|(t, p)| t.starts_with(p)),
        "suffix" => text.zip(operand.as_str()).is_some_and(|(t, s)| t.ends_with(s)),
        "equals-ignore-case" => text.zip(operand.as_str()).is_some_and(|(t, o)| t.eq_ignore_ascii_case(o)),
        "anything-but" => {
            let Some(field) = field else { return false };
            match operand {
                Value::Array(excluded) => !excluded.iter().any(|e| matcher_matches(e, Some(field))),
                Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                    Some(prefix) => field.as_str().is_some_and(|t| !t.starts_with(prefix)),
                    None => false,
                },
                single => !matcher_matches(single, Some(field)),
            }
        }
        "numeric" => {
            let Some(number) = field.and_then(Value::as_f64) else { return false };
            numeric_conditions(operand).is_some_and(|conditions| {
                conditions.iter().all(|(op, bound)| match *op {
                    "<" => number < *bound,
                    "<=" => number <= *bound,
                    ">" => number > *bound,
                    ">=" => number >= *bound,
                    "=" => number == *bound,
                    _ => false,
                })
            })
        }
        _ => false,
    }
}

/// `["<", 10, ">=", 2]` → `[("<", 10.0), (">=", 2.0)]`.
fn numeric_conditions(operand: &Value) -> Option<Vec<(&str, f64)>> {
    let items = operand.as_array()?;
    if items.is_empty() || items.len() % 2 != 0 {
        return None;
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = pair[0].as_str().filter(|op| matches!(*op, "<" | "<=" | ">" | ">=" | "="))?;
            Some((op, pair[1].as_f64()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn insert_of(kind: &str) -> Value {
        json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": kind}, "age": {"N": "42"}}}})
    }

    #[test]
    fn literal_patterns_select_inserts_of_one_type() {
        let filter = EventFilter::parse(
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["subscriber"]}}}}"#,
        )
        .unwrap();
        assert!(filter.matches(&insert_of("subscriber")));
        assert!(!filter.matches(&insert_of("post")));
        assert!(!filter.matches(&json!({"eventName": "MODIFY"})));
    }

    #[test]
    fn operators_match_like_lambda() {
        let record = insert_of("subscriber");
        let matches = |pattern: &str| EventFilter::parse(pattern).unwrap().matches(&record);
        assert!(matches(r#"{"dynamodb": {"NewImage": {"type": {"S": [{"prefix": "sub"}]}}}}"#));
        assert!(matches(r#"{"dynamodb": {"NewImage": {"type": {"S": [{"suffix": "iber"}]}}}}"#));
        assert!(matches(r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#));
        assert!(!matches(r#"{"eventName": [{"anything-but": "INSERT"}]}"#));
        assert!(matches(r#"{"dynamodb": {"OldImage": [{"exists": false}]}}"#));
        assert!(!matches(r#"{"dynamodb": {"NewImage": [{"exists": false}]}}"#));
        assert!(matches(r#"{"eventName": [{"equals-ignore-case": "insert"}]}"#));
    }

    #[test]
    fn malformed_patterns_are_refused_with_their_path() {
        let err = EventFilter::parse(r#"{"eventName": "INSERT"}"#).unwrap_err();
        assert_eq!(err.path, "eventName");
        let err = EventFilter::parse(r#"{"a": {"b": [{"regex": "x"}]}}"#).unwrap_err();
        assert_eq!(err.path, "a.b");
        assert!(EventFilter::parse(r#"{"n": [{"numeric": [">", "x"]}]}"#).is_err());
        assert!(EventFilter::parse("[1]").is_err());
    }

    #[test]
    fn numeric_ranges_compare_numbers() {
        let filter = EventFilter::parse(r#"{"size": [{"numeric": [">", 10, "<=", 20]}]}"#).unwrap();
        assert!(filter.matches(&json!({"size": 15})));
        assert!(!filter.matches(&json!({"size": 10})));
        assert!(!filter.matches(&json!({"size": "15"})));
    }
}
