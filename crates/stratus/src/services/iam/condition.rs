//! A statement's `Condition` block: every operator and key in it must hold. The rules AWS
//! documents and that are easy to get wrong: a key the request lacks fails a condition, except
//! for negated operators (`StringNotEquals`, `ArnNotLike`, …) where it passes; `…IfExists`
//! passes when the key is absent; `Null` tests presence; `ForAnyValue:` fails and
//! `ForAllValues:` passes on an absent or empty set.

use std::cmp::Ordering;
use std::time::UNIX_EPOCH;

use super::context::Context;
use super::pattern::{Compare, Template, Unresolved};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    /// A single-valued key.
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl Order {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Equals => ordering == Ordering::Equal,
            Self::LessThan => ordering == Ordering::Less,
            Self::LessThanEquals => ordering != Ordering::Greater,
            Self::GreaterThan => ordering == Ordering::Greater,
            Self::GreaterThanEquals => ordering != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    String {
        ignore_case: bool,
    },
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    Binary,
    /// `ArnEquals` and `ArnLike` alike: each of the six `:` parts is matched with wildcards.
    Arn,
    Null,
}

/// One key under one operator, e.g. `"StringLike": {"s3:prefix": ["a/*", "b/*"]}`.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    set: Set,
    operator: Operator,
    negated: bool,
    if_exists: bool,
    key: String,
    values: Vec<Template>,
}

impl Condition {
    pub(super) fn parse(operator: &str, key: &str, values: Vec<Template>) -> Result<Self, String> {
        let (set, name) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (Set::ForAnyValue, rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (Set::ForAllValues, rest)
        } else {
            (Set::Single, operator)
        };
        let (name, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let (operator_kind, negated) =
            base_operator(name).ok_or_else(|| format!("`{operator}` is not a condition operator"))?;
        if operator_kind == Operator::Null && (if_exists || set != Set::Single) {
            return Err(format!("`{operator}`: Null takes neither IfExists nor a set qualifier"));
        }
        if values.is_empty() {
            return Err(format!("`{operator}` gives `{key}` no value"));
        }
        Ok(Self { set, operator: operator_kind, negated, if_exists, key: key.to_owned(), values })
    }

    /// Whether the condition holds for the request; `Unresolved` if one of its values names a
    /// variable the request lacks (the statement then does not apply).
    pub(super) fn holds(&self, context: &Context) -> Result<bool, Unresolved> {
        for value in &self.values {
            value.resolve(context)?;
        }
        let present = context.values(&self.key).filter(|values| !values.is_empty());
        if self.operator == Operator::Null {
            let mut wanted = Vec::new();
            for value in &self.values {
                wanted.push(value.resolve(context)?.eq_ignore_ascii_case("true"));
            }
            return Ok(wanted.into_iter().any(|absent| absent == present.is_none()));
        }
        let Some(request_values) = present else {
            return Ok(match self.set {
                Set::ForAllValues => true,
                Set::ForAnyValue => self.if_exists,
                Set::Single => self.if_exists || self.negated,
            });
        };
        let mut hits = Vec::with_capacity(request_values.len());
        for request_value in request_values {
            let mut hit = false;
            for value in &self.values {
                if self.compare(request_value, value, context)? {
                    hit = true;
                    break;
                }
            }
            hits.push(hit);
        }
        Ok(match self.set {
            Set::Single | Set::ForAnyValue if self.negated => hits.iter().any(|hit| !hit),
            Set::Single | Set::ForAnyValue => hits.iter().any(|hit| *hit),
            Set::ForAllValues => hits.iter().all(|hit| *hit != self.negated),
        })
    }

    fn compare(&self, request: &str, value: &Template, context: &Context) -> Result<bool, Unresolved> {
        Ok(match self.operator {
            Operator::String { ignore_case } => {
                value.matches(request, Compare::Exact, ignore_case, context)?
            }
            Operator::StringLike => value.matches(request, Compare::Wildcards, false, context)?,
            Operator::Numeric(order) => {
                let (Ok(request), Ok(value)) =
                    (request.parse::<f64>(), value.resolve(context)?.parse::<f64>())
                else {
                    return Ok(false);
                };
                request.partial_cmp(&value).is_some_and(|ordering| order.holds(ordering))
            }
            Operator::Date(order) => match (epoch_millis(request), epoch_millis(&value.resolve(context)?)) {
                (Some(request), Some(value)) => order.holds(request.cmp(&value)),
                _ => false,
            },
            Operator::Bool => value.resolve(context)?.eq_ignore_ascii_case(request),
            Operator::Binary => value.resolve(context)? == request,
            Operator::Arn => arn_matches(request, &value.resolve(context)?),
            Operator::Null => false,
        })
    }
}

/// The operator a name stands for, and whether it is the negated form.
fn base_operator(name: &str) -> Option<(Operator, bool)> {
    let order = |name: &str| match name {
        "Equals" => Some((Order::Equals, false)),
        "NotEquals" => Some((Order::Equals, true)),
        "LessThan" => Some((Order::LessThan, false)),
        "LessThanEquals" => Some((Order::LessThanEquals, false)),
        "GreaterThan" => Some((Order::GreaterThan, false)),
        "GreaterThanEquals" => Some((Order::GreaterThanEquals, false)),
        _ => None,
    };
    if let Some(rest) = name.strip_prefix("Numeric") {
        return order(rest).map(|(order, negated)| (Operator::Numeric(order), negated));
    }
    if let Some(rest) = name.strip_prefix("Date") {
        return order(rest).map(|(order, negated)| (Operator::Date(order), negated));
    }
    Some(match name {
        "StringEquals" => (Operator::String { ignore_case: false }, false),
        "StringNotEquals" => (Operator::String { ignore_case: false }, true),
        "StringEqualsIgnoreCase" => (Operator::String { ignore_case: true }, false),
        "StringNotEqualsIgnoreCase" => (Operator::String { ignore_case: true }, true),
        "StringLike" => (Operator::StringLike, false),
        "StringNotLike" => (Operator::StringLike, true),
        "Bool" => (Operator::Bool, false),
        "BinaryEquals" => (Operator::Binary, false),
        "ArnEquals" | "ArnLike" => (Operator::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Operator::Arn, true),
        "Null" => (Operator::Null, false),
        _ => return None,
    })
}

/// A date as policies and contexts write them: ISO 8601 (a date, or a date and time) or epoch
/// seconds.
fn epoch_millis(text: &str) -> Option<i128> {
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse::<i128>().ok().map(|seconds| seconds * 1000);
    }
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_owned() };
    let time = humantime::parse_rfc3339_weak(&full).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_millis() as i128)
}

/// `ArnLike`: six `:`-separated parts (the last may hold more `:`), each matched on its own.
fn arn_matches(request: &str, pattern: &str) -> bool {
    let request: Vec<&str> = request.splitn(6, ':').collect();
    let pattern: Vec<&str> = pattern.splitn(6, ':').collect();
    if request.len() != 6 || pattern.len() != 6 {
        return false;
    }
    request.iter().zip(&pattern).all(|(request, pattern)| {
        Template::parse(pattern, false)
            .and_then(|part| {
                part.matches(request, Compare::Wildcards, false, &Context::default())
                    .map_err(|_| String::new())
            })
            .unwrap_or(false)
    })
}
