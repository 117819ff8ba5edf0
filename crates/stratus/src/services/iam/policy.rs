//! Identity policies as AWS writes them, read once and checked strictly: a policy that does not
//! say what it means is refused at start-up with the statement at fault, never half-applied.

use serde_json::{Map, Value};

use super::condition::Condition;
use super::pattern::Template;

/// The policy language version that has policy variables; `2008-10-17` (the default when
/// `Version` is absent) reads `${…}` as text.
const VARIABLES_VERSION: &str = "2012-10-17";
const OLD_VERSION: &str = "2008-10-17";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// `Action`/`Resource` (matches any of the patterns) or `NotAction`/`NotResource` (matches what
/// none of them does).
#[derive(Debug, Clone)]
pub(super) struct Matcher {
    patterns: Vec<Template>,
    inverted: bool,
}

impl Matcher {
    pub(super) fn patterns(&self) -> &[Template] {
        &self.patterns
    }

    pub(super) fn inverted(&self) -> bool {
        self.inverted
    }
}

#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) index: usize,
    pub(super) sid: Option<String>,
    pub(super) effect: Effect,
    pub(super) actions: Matcher,
    pub(super) resources: Matcher,
    pub(super) conditions: Vec<Condition>,
}

/// A named identity policy (a role's permissions).
#[derive(Debug, Clone)]
pub struct Policy {
    pub(super) name: String,
    pub(super) statements: Vec<Statement>,
}

/// Where a policy is wrong and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{policy}`{}: {problem}", at.as_ref().map(|at| format!(", {at}")).unwrap_or_default())]
pub struct PolicyError {
    policy: String,
    /// The statement at fault: "statement 2 (Sid `ReadOwn`)".
    at: Option<String>,
    problem: String,
}

impl Policy {
    /// Reads a policy document; `name` is how decisions and errors refer to it.
    pub fn parse(name: &str, json: &str) -> Result<Self, PolicyError> {
        let error =
            |at: Option<String>, problem: String| PolicyError { policy: name.to_owned(), at, problem };
        let document: Value =
            serde_json::from_str(json).map_err(|e| error(None, format!("is not JSON: {e}")))?;
        let Value::Object(document) = document else {
            return Err(error(None, "must be a JSON object".into()));
        };
        if let Some(unknown) =
            document.keys().find(|key| !matches!(key.as_str(), "Version" | "Id" | "Statement"))
        {
            return Err(error(None, format!("has an unknown element `{unknown}`")));
        }
        let variables = match document.get("Version") {
            None => false,
            Some(Value::String(version)) if version == VARIABLES_VERSION => true,
            Some(Value::String(version)) if version == OLD_VERSION => false,
            Some(other) => {
                return Err(error(
                    None,
                    format!("Version {other} is neither {VARIABLES_VERSION} nor {OLD_VERSION}"),
                ));
            }
        };
        let statements = match document.get("Statement") {
            Some(Value::Array(statements)) => statements.iter().collect(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => return Err(error(None, "needs a Statement (an object or a list of them)".into())),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, statement)| {
                let at = statement_label(index, statement);
                parse_statement(index, statement, variables).map_err(|problem| error(Some(at), problem))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { name: name.to_owned(), statements })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn statement_label(index: usize, statement: &Value) -> String {
    match statement.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {} (Sid `{sid}`)", index + 1),
        None => format!("statement {}", index + 1),
    }
}

fn parse_statement(index: usize, statement: &Value, variables: bool) -> Result<Statement, String> {
    let Value::Object(fields) = statement else { return Err("must be a JSON object".into()) };
    const KNOWN: [&str; 9] = [
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "Principal",
        "NotPrincipal",
    ];
    if let Some(unknown) = fields.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(format!("has an unknown element `{unknown}`"));
    }
    if fields.contains_key("Principal") || fields.contains_key("NotPrincipal") {
        return Err("names a Principal, which an identity policy must not".into());
    }
    let sid = match fields.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err("Sid must be a string".into()),
    };
    let effect = match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("Effect must be \"Allow\" or \"Deny\"".into()),
    };
    // Actions are never substituted: variables apply to resources and condition values only.
    let actions = matcher(fields, "Action", "NotAction", false)?;
    let resources = matcher(fields, "Resource", "NotResource", variables)?;
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => conditions(block, variables)?,
        Some(_) => return Err("Condition must be an object of operators".into()),
    };
    Ok(Statement { index, sid, effect, actions, resources, conditions })
}

fn matcher(
    fields: &Map<String, Value>,
    positive: &str,
    negative: &str,
    variables: bool,
) -> Result<Matcher, String> {
    let (values, inverted) = match (fields.get(positive), fields.get(negative)) {
        (Some(values), None) => (values, false),
        (None, Some(values)) => (values, true),
        (Some(_), Some(_)) => return Err(format!("has both {positive} and {negative}")),
        (None, None) => return Err(format!("needs {positive} or {negative}")),
    };
    let name = if inverted { negative } else { positive };
    let patterns = strings(values)
        .ok_or_else(|| format!("{name} must be a string or a list of strings"))?
        .iter()
        .map(|text| Template::parse(text, variables))
        .collect::<Result<Vec<_>, _>>()?;
    if patterns.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(Matcher { patterns, inverted })
}

fn conditions(block: &Map<String, Value>, variables: bool) -> Result<Vec<Condition>, String> {
    let mut conditions = Vec::new();
    for (operator, keys) in block {
        let Value::Object(keys) = keys else {
            return Err(format!("Condition `{operator}` must map keys to values"));
        };
        for (key, values) in keys {
            let values = strings(values)
                .ok_or_else(|| {
                    format!("the values of `{key}` under `{operator}` must be strings, numbers or booleans")
                })?
                .iter()
                .map(|text| Template::parse(text, variables))
                .collect::<Result<Vec<_>, _>>()?;
            conditions.push(Condition::parse(operator, key, values)?);
        }
    }
    Ok(conditions)
}

/// A string, number or boolean, or a list of them, as text (policies write `true` and `"true"`
/// alike).
fn strings(value: &Value) -> Option<Vec<String>> {
    let scalar = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|text| vec![text]),
    }
}
