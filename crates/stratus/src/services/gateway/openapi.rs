//! The stage's OpenAPI 3.1 document — every API's, derived from its handlers and types
//! (utoipa), merged, with the stage's server and security schemes — served at
//! `/v1/openapi.json` and as a docs page at `/v1/docs` (rendered here: no script, no CDN), and
//! the request validator built from the same schemas: a request's path and query parameters and
//! its JSON body are checked before the function runs, and a 400 problem lists each violation
//! with its JSON pointer (`/title`) or parameter (`?limit`, `{id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use jsonschema::error::ValidationErrorKind;
use serde_json::{Value, json};

use crate::infra::http::{Problem, Violation};

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
}

#[derive(Debug)]
struct Parameter {
    name: String,
    location: Location,
    required: bool,
    /// The JSON type a text value is read as before it is checked.
    kind: String,
    schema: jsonschema::Validator,
}

#[derive(Debug)]
struct Operation {
    parameters: Vec<Parameter>,
    /// The JSON body's schema, with whether a body is required.
    body: Option<(jsonschema::Validator, bool)>,
}

/// The document and the validators made from it.
#[derive(Debug)]
pub(crate) struct ApiDocument {
    json: Arc<Value>,
    /// By route (as the router declares it), then method: looked up on every request.
    operations: HashMap<String, HashMap<Method, Operation>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the OpenAPI document does not serialize")]
    Json(#[from] serde_json::Error),
    #[error("schema of {operation} does not compile: {problem}")]
    Schema { operation: String, problem: String },
}

impl ApiDocument {
    /// Merges the APIs' documents; `servers` name the stage, and each operation's security
    /// names the authorizer `[gateway.authorization]` gives its route.
    pub(crate) fn new(
        apis: Vec<utoipa::openapi::OpenApi>,
        stage: &str,
        public_url: &str,
        gateway: &super::GatewayConfig,
    ) -> Result<Self, DocumentError> {
        let mut merged = utoipa::openapi::OpenApi::default();
        for api in apis {
            merged.merge(api);
        }
        let mut json = serde_json::to_value(&merged)?;
        json["openapi"] = json!("3.1.0");
        json["info"] = json!({
            "title": "Stratus APIs",
            "version": "1",
            "description": format!("The REST APIs of stage `{stage}`. `/v1` routes stay stable; a breaking change would be served as `/v2` beside them."),
        });
        json["servers"] = json!([{ "url": public_url, "description": format!("stage `{stage}`") }]);
        json["components"]["securitySchemes"] = json!({
            "user_pool": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An access token of the stage's user pool (`InitiateAuth`).",
            },
            "api_key": { "type": "apiKey", "in": "header", "name": "x-api-key",
                "description": "A usage plan's key (`stratus api-keys create`), where the stage has plans." },
        });
        secure_routes(&mut json, gateway);
        let operations = compile(&json)?;
        Ok(Self { json: Arc::new(json), operations })
    }

    /// `/v1/openapi.json` and `/v1/docs`.
    pub(crate) fn routes(&self) -> Router {
        let page = Arc::new(render_docs(&self.json));
        Router::new()
            .route("/v1/openapi.json", get(document))
            .with_state(Arc::clone(&self.json))
            .route("/v1/docs", get(docs).with_state(page))
    }

    /// Checks a request against its operation: every violation, or `Ok` (also for operations
    /// the document does not describe). `body` is the JSON body, `None` when the request has
    /// none of a JSON type.
    pub(crate) fn check(
        &self,
        method: &Method,
        route: &str,
        path_values: Option<&RawPathParams>,
        query: Option<&str>,
        body: Option<&[u8]>,
        strict_query: bool,
    ) -> Result<(), Problem> {
        let Some(operation) = self.operation(method, route) else { return Ok(()) };
        let mut violations = Vec::new();
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
        for parameter in &operation.parameters {
            let value = match parameter.location {
                Location::Query => {
                    pairs.iter().find(|(name, _)| *name == parameter.name).map(|(_, value)| value.as_str())
                }
                Location::Path => path_values
                    .and_then(|values| values.iter().find(|(name, _)| *name == parameter.name))
                    .map(|(_, value)| value),
            };
            let pointer = || match parameter.location {
                Location::Query => format!("?{}", parameter.name),
                Location::Path => format!("{{{}}}", parameter.name),
            };
            match value {
                None if parameter.required => violations.push(Violation::new(pointer(), "is required")),
                None => {}
                Some(text) => {
                    let value = typed(text, &parameter.kind);
                    for error in parameter.schema.iter_errors(&value) {
                        violations.push(Violation::new(pointer(), error.to_string()));
                    }
                }
            }
        }
        // The document lists every parameter an operation takes: another is a mistake the
        // caller should hear of, not a silently ignored one.
        for (name, _) in pairs.iter().filter(|_| strict_query) {
            let known = operation.parameters.iter().any(|p| p.location == Location::Query && p.name == *name);
            if !known {
                violations.push(Violation::new(format!("?{name}"), "is not a parameter of this operation"));
            }
        }
        if let Some((schema, required)) = &operation.body {
            match body {
                // Not JSON: the function says what it takes (415).
                None => {}
                Some([]) if *required => violations.push(Violation::new("", "a JSON body is required")),
                Some([]) => {}
                Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                    Err(error) => {
                        violations.push(Violation::new("", format!("the body is not JSON: {error}")));
                    }
                    Ok(value) => violations
                        .extend(schema.iter_errors(&value).flat_map(|error| body_violations(&error))),
                },
            }
        }
        if violations.is_empty() { Ok(()) } else { Err(Problem::invalid(merged(violations))) }
    }

    /// Whether the document describes the operation, and so has something to check.
    pub(crate) fn describes(&self, method: &Method, route: &str) -> bool {
        self.operation(method, route).is_some()
    }

    /// Whether the operation takes a JSON body the gateway should read and check.
    pub(crate) fn checks_body(&self, method: &Method, route: &str) -> bool {
        self.operation(method, route).is_some_and(|operation| operation.body.is_some())
    }

    fn operation(&self, method: &Method, route: &str) -> Option<&Operation> {
        self.operations.get(route)?.get(method)
    }
}

/// The security schemes of the IAM and function authorizers, and their routes' operations
/// requiring them instead of the user pool's token.
fn secure_routes(json: &mut Value, gateway: &super::GatewayConfig) {
    use super::config::{IAM, IdentitySource, USER_POOL};
    let schemes = &mut json["components"]["securitySchemes"];
    for (name, authorizer) in &gateway.authorizers {
        let (location, parameter) =
            match authorizer.identity_source.first().and_then(|s| IdentitySource::parse(s)) {
                Some(IdentitySource::Query(parameter)) => ("query", parameter),
                Some(IdentitySource::Header(header)) => ("header", header),
                None => continue,
            };
        schemes[name] = json!({
            "type": "apiKey", "in": location, "name": parameter, "x-amazon-apigateway-authtype": "custom",
            "description": format!("Checked by the authorizer function `{}`.", authorizer.function),
        });
    }
    if gateway.authorization.values().any(|name| name == IAM) {
        schemes[IAM] = json!({
            "type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4",
            "description": "SigV4 for `execute-api`, with an identity pool's temporary credentials.",
        });
    }
    for (route, name) in &gateway.authorization {
        let Some((method, path)) = route.split_once(' ') else { continue };
        let Some(operations) = json["paths"].get_mut(path).and_then(Value::as_object_mut) else { continue };
        for (verb, operation) in operations.iter_mut() {
            if method != "ANY" && !verb.eq_ignore_ascii_case(method) {
                continue;
            }
            let Some(operation) = operation.as_object_mut() else { continue };
            let security = if name == USER_POOL { json!([{ USER_POOL: [] }]) } else { json!([{ name: [] }]) };
            operation.insert("security".into(), security);
        }
    }
}

/// One violation per place, its problems joined.
fn merged(violations: Vec<Violation>) -> Vec<Violation> {
    let mut merged: Vec<Violation> = Vec::with_capacity(violations.len());
    for violation in violations {
        match merged.iter_mut().find(|seen| seen.pointer == violation.pointer) {
            Some(seen) => {
                seen.detail.push_str("; ");
                seen.detail.push_str(&violation.detail);
            }
            None => merged.push(violation),
        }
    }
    merged
}

/// A violation per unexpected or missing property, pointing at it; otherwise at the value.
fn body_violations(error: &jsonschema::ValidationError<'_>) -> Vec<Violation> {
    let at = error.instance_path().to_string();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                Violation::new(
                    format!("{at}/{}", name.replace('~', "~0").replace('/', "~1")),
                    "is not a field of this request",
                )
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![Violation::new(format!("{at}/{name}"), "is required")]
        }
        _ => vec![Violation::new(at, error.to_string())],
    }
}

/// A parameter's text as the JSON value its schema describes, when it reads as one; otherwise
/// the text, which the schema then refuses with a clear message.
fn typed(text: &str, kind: &str) -> Value {
    match kind {
        "integer" => text.parse::<i64>().map_or_else(|_| json!(text), |n| json!(n)),
        "number" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| json!(text), Value::Number),
        "boolean" => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

/// A validator for `schema`, its references resolved within the document.
fn validator(
    document: &Value,
    schema: &Value,
    operation: &str,
) -> Result<jsonschema::Validator, DocumentError> {
    let mut root = schema.clone();
    if let Some(object) = root.as_object_mut() {
        object.insert("components".into(), document["components"].clone());
    } else {
        root = json!({ "allOf": [schema], "components": document["components"] });
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|error| DocumentError::Schema {
            operation: operation.to_owned(),
            problem: error.to_string(),
        })
}

/// The JSON type a parameter's schema names (following one `$ref`).
fn kind_of(document: &Value, schema: &Value) -> String {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            reference.strip_prefix('#').and_then(|pointer| document.pointer(pointer)).unwrap_or(schema)
        }
        None => schema,
    };
    resolved.get("type").and_then(Value::as_str).unwrap_or("string").to_owned()
}

fn compile(document: &Value) -> Result<HashMap<String, HashMap<Method, Operation>>, DocumentError> {
    let mut operations = HashMap::new();
    let Some(paths) = document["paths"].as_object() else { return Ok(operations) };
    for (path, item) in paths {
        let Some(item) = item.as_object() else { continue };
        for (method, operation) in item {
            let Ok(parsed) = method.to_uppercase().parse::<Method>() else { continue };
            let name = format!("{} {path}", parsed);
            let mut parameters = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let location = match parameter["in"].as_str() {
                    Some("path") => Location::Path,
                    Some("query") => Location::Query,
                    _ => continue,
                };
                let schema = &parameter["schema"];
                parameters.push(Parameter {
                    name: parameter["name"].as_str().unwrap_or_default().to_owned(),
                    location,
                    required: parameter["required"].as_bool().unwrap_or(false),
                    kind: kind_of(document, schema),
                    schema: validator(document, schema, &name)?,
                });
            }
            let body = match operation["requestBody"]["content"].as_object() {
                Some(content) => content
                    .iter()
                    .find(|(media, _)| media.as_str() == "application/json" || media.ends_with("+json"))
                    .map(|(_, media)| validator(document, &media["schema"], &name))
                    .transpose()?
                    .map(|schema| (schema, operation["requestBody"]["required"].as_bool().unwrap_or(false))),
                None => None,
            };
            operations
                .entry(path.clone())
                .or_insert_with(HashMap::new)
                .insert(parsed, Operation { parameters, body });
        }
    }
    Ok(operations)
}

async fn document(State(json): State<Arc<Value>>) -> Response {
    let mut response = axum::Json(json.as_ref().clone()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn docs(State(page): State<Arc<String>>) -> Html<String> {
    Html(page.as_ref().clone())
}

/// The docs page, rendered once from the document.
fn render_docs(document: &Value) -> String {
    let mut environment = minijinja::Environment::new();
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    let rendered = environment.template_from_str(include_str!("../../../templates/api/docs.html")).and_then(
        |template| {
            template.render(minijinja::context! { doc => document, operations => operation_list(document) })
        },
    );
    rendered.unwrap_or_else(|error| {
        tracing::error!(error = %error, "cannot render the API docs page");
        "<!doctype html><title>API docs</title><p>The docs page could not be rendered; see /v1/openapi.json."
            .into()
    })
}

/// The operations in document order, flattened for the page.
fn operation_list(document: &Value) -> Vec<Value> {
    let mut list = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let body = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| content.iter().next())
                .map(|(media, schema)| json!({ "media": media, "schema": schema_name(&schema["schema"]) }));
            let responses: Vec<Value> = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, response)| {
                    let schema = response["content"]
                        .as_object()
                        .and_then(|content| content.values().next())
                        .map(|media| schema_name(&media["schema"]));
                    json!({ "status": status, "description": response["description"], "schema": schema })
                })
                .collect();
            list.push(json!({
                "method": method.to_uppercase(), "path": path, "id": operation["operationId"],
                "tag": operation["tags"][0], "parameters": operation["parameters"], "body": body,
                "responses": responses, "secured": operation["security"].is_array(),
            }));
        }
    }
    list
}

fn schema_name(schema: &Value) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference.rsplit('/').next().unwrap_or(reference).to_owned(),
        None => schema.get("type").and_then(Value::as_str).unwrap_or("object").to_owned(),
    }
}
