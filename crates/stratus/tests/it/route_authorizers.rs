//! The gateway's per-route authorizers through HTTP: IAM (SigV4 for `execute-api` with the
//! identity pool's temporary credentials, allowed by the role's `execute-api:Invoke`) and a
//! function authorizer registered on the host (token and request kinds, its answer cached by
//! token) — each refusal as API Gateway answers it, with nothing written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use stratus::config::Config;
use stratus::infra::clock::Clock as _;
use stratus::infra::sigv4::{self, SignedRequest};
use stratus::ports::events::{AuthorizerEvent, AuthorizerResponse, Unauthorized};
use stratus::services::cognito::identity_pool::provider_name;
use stratus::services::gateway::{AuthorizerKind, FunctionAuthorizerConfig};

use crate::support::{OPERATOR_KEY, OPERATOR_SECRET, Recorder, TestApp};
use crate::todos::{User, titles, user};

const TODOS_ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:stratus/test";

/// Temporary credentials, as `GetCredentialsForIdentity` returns them.
struct Credentials {
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
}

/// The todos routes behind `authorizer`.
fn todos_behind(config: &mut Config, authorizer: &str) {
    for route in ["ANY /v1/todos", "ANY /v1/todos/{id}"] {
        config.gateway.authorization.insert(route.into(), authorizer.into());
    }
}

async fn credentials_of(app: &TestApp, user: &User) -> Credentials {
    let pool = app.identity_pools.id_named("default").expect("pools").expect("the default pool");
    let logins = BTreeMap::from([(provider_name("us-east-1", &app.pool_id), user.id_token.clone())]);
    let identity = app.identity_pools.get_id(&pool, &logins).await.expect("identity");
    let issued = app.identity_pools.credentials_for(&identity.id, &logins).await.expect("credentials");
    Credentials {
        access_key_id: issued.credentials.access_key_id,
        secret: issued.credentials.secret_access_key,
        session_token: Some(issued.credentials.session_token),
    }
}

struct Signed<'a> {
    method: &'a str,
    path: &'a str,
    body: Option<Value>,
    service: &'a str,
    /// The body actually sent, when it differs from the signed one.
    sent_body: Option<Value>,
}

impl<'a> Signed<'a> {
    fn new(method: &'a str, path: &'a str) -> Self {
        Self { method, path, body: None, service: "execute-api", sent_body: None }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A request signed with SigV4 as an AWS SDK signs it; the status and JSON body.
async fn signed(
    app: &TestApp,
    credentials: &Credentials,
    request: Signed<'_>,
) -> (StatusCode, Value, Option<String>) {
    let (path, query) = request.path.split_once('?').unwrap_or((request.path, ""));
    let body = request.body.as_ref().map(Value::to_string).unwrap_or_default();
    let mut headers = vec![
        ("host".to_owned(), app.base.trim_start_matches("http://").to_owned()),
        ("x-amz-date".to_owned(), sigv4::amz_date(app.clock.now())),
    ];
    if request.body.is_some() {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    let to_sign = SignedRequest {
        method: request.method,
        path,
        query,
        headers: headers.clone(),
        body: body.as_bytes(),
    };
    let authorization = sigv4::authorization_header(
        &to_sign,
        &credentials.access_key_id,
        &credentials.secret,
        "us-east-1",
        request.service,
    )
    .expect("sign");
    let mut builder = app
        .http
        .request(request.method.parse().expect("method"), format!("{}{}", app.base, request.path))
        .header("authorization", authorization);
    for (name, value) in headers.iter().filter(|(name, _)| name != "host") {
        builder = builder.header(name, value);
    }
    let sent = request.sent_body.as_ref().map_or(body, Value::to_string);
    let response = builder.body(sent).send().await.expect("request");
    let status = response.status();
    let kind = response.headers().get("x-amzn-errortype").map(|v| v.to_str().expect("header").to_owned());
    (status, response.json().await.unwrap_or(Value::Null), kind)
}

#[tokio::test]
async fn iam_routes_take_sigv4_calls_with_the_users_identity_pool_credentials() {
    let app = TestApp::spawn_with(|config| todos_behind(config, "iam"), |_| {}).await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let (alices, bobs) = (credentials_of(&app, &alice).await, credentials_of(&app, &bob).await);

    let (status, created, _) =
        signed(&app, &alices, Signed::new("POST", "/v1/todos").body(json!({"title": "signed"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, page, _) = signed(&app, &alices, Signed::new("GET", "/v1/todos?limit=5")).await;
    assert_eq!((status, titles(&page)), (StatusCode::OK, vec!["signed".to_owned()]));
    let (status, one, _) = signed(&app, &alices, Signed::new("GET", &format!("/v1/todos/{id}"))).await;
    assert_eq!((status, one["title"].as_str()), (StatusCode::OK, Some("signed")));

    // The owner is the user the credentials were issued to: Bob's see none of it.
    let (status, _, _) = signed(&app, &bobs, Signed::new("GET", &format!("/v1/todos/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page, _) = signed(&app, &bobs, Signed::new("GET", "/v1/todos")).await;
    assert!(titles(&page).is_empty());
    // A path encoded by the client is signed encoded twice, as every AWS SDK signs it.
    let (status, _, _) = signed(&app, &alices, Signed::new("GET", "/v1/todos/not%20an%20id")).await;
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST, "{status}");

    // The document says how the routes are signed.
    let document: Value = app
        .http
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(document["paths"]["/v1/todos/{id}"]["patch"]["security"], json!([{"iam": []}]));
    assert_eq!(document["components"]["securitySchemes"]["iam"]["x-amazon-apigateway-authtype"], "awsSigv4");
    assert_eq!(document["paths"]["/v1/posts"]["post"]["security"], json!([{"user_pool": []}]));
    app.stop().await;
}

#[tokio::test]
async fn iam_routes_refuse_what_api_gateway_refuses_and_write_nothing() {
    let app = TestApp::spawn_with(
        |config| {
            todos_behind(config, "iam");
            config.identity_pools.pools.get_mut("default").expect("default pool").allow_unauthenticated =
                true;
        },
        |_| {},
    )
    .await;
    let alice = user(&app, "alice").await;
    let credentials = credentials_of(&app, &alice).await;
    let create = || Signed::new("POST", "/v1/todos").body(json!({"title": "refused"}));

    // No signature; an access token instead of one.
    let (status, body) = call(&app, None, "GET", "/v1/todos", None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"message": "Missing Authentication Token"})));
    let (status, _) = call(&app, Some(&format!("Bearer {}", alice.token)), "GET", "/v1/todos", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A body other than the one signed.
    let tampered = Signed { sent_body: Some(json!({"title": "tampered"})), ..create() };
    let (status, _, kind) = signed(&app, &credentials, tampered).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("InvalidSignatureException")));
    // Scoped to another service.
    let (status, body, _) = signed(&app, &credentials, Signed { service: "s3", ..create() }).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().expect("message").contains("execute-api"), "{body}");
    // A wrong secret, an unknown key, no session token.
    let forged = Credentials { secret: "not-the-secret".into(), ..credentials_of(&app, &alice).await };
    let (status, _, kind) = signed(&app, &forged, create()).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("InvalidSignatureException")));
    let unknown =
        Credentials { access_key_id: "ASIAUNKNOWN0000000000".into(), ..credentials_of(&app, &alice).await };
    let (status, _, kind) = signed(&app, &unknown, create()).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("UnrecognizedClientException")));
    let tokenless = Credentials { session_token: None, ..credentials_of(&app, &alice).await };
    let (status, _, kind) = signed(&app, &tokenless, create()).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("UnrecognizedClientException")));

    // A guest's role allows nothing.
    let pool = app.identity_pools.id_named("default").expect("pools").expect("pool");
    let guest = app.identity_pools.get_id(&pool, &BTreeMap::new()).await.expect("guest identity");
    let issued = app.identity_pools.credentials_for(&guest.id, &BTreeMap::new()).await.expect("credentials");
    let guests = Credentials {
        access_key_id: issued.credentials.access_key_id,
        secret: issued.credentials.secret_access_key,
        session_token: Some(issued.credentials.session_token),
    };
    let (status, body, kind) = signed(&app, &guests, create()).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("AccessDeniedException")), "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains(&format!("{TODOS_ARN}/POST/v1/todos")), "{message}");
    assert!(message.contains("Cognito_DefaultUnauthenticated"), "{message}");

    // The operator's keys pass IAM, but are no user's: the todos API has no owner for them.
    let operator = Credentials {
        access_key_id: OPERATOR_KEY.into(),
        secret: OPERATOR_SECRET.into(),
        session_token: None,
    };
    let (status, _, _) = signed(&app, &operator, create()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Credentials past their expiry.
    app.clock.advance(Duration::from_secs(3601));
    let (status, _, kind) = signed(&app, &credentials, create()).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("ExpiredTokenException")));

    let tokens = app.sign_in("alice", crate::todos::PASSWORD).await;
    let again = User {
        token: String::new(),
        id_token: tokens["AuthenticationResult"]["IdToken"].as_str().expect("id").into(),
    };
    let fresh = credentials_of(&app, &again).await;
    let (status, page, _) = signed(&app, &fresh, Signed::new("GET", "/v1/todos")).await;
    assert_eq!((status, titles(&page)), (StatusCode::OK, Vec::<String>::new()), "nothing was written");
    app.stop().await;
}

#[tokio::test]
async fn an_explicit_deny_in_the_roles_policy_beats_its_allow() {
    let dir = tempfile::TempDir::new().expect("dir");
    let policy = dir.path().join("no-deletes.json");
    let document = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:stratus/*"},
            {"Sid": "NoDeletes", "Effect": "Deny", "Action": "execute-api:*", "Resource": "arn:aws:execute-api:*:*:*/*/DELETE/*"},
        ],
    });
    std::fs::write(&policy, document.to_string()).expect("policy file");
    let app = TestApp::spawn_with(
        |config| {
            todos_behind(config, "iam");
            config.iam.roles.insert(
                "NoDeletes".into(),
                stratus::services::iam::RoleConfig { policy_files: vec![policy] },
            );
            config.identity_pools.pools.get_mut("default").expect("pool").authenticated_role =
                "arn:aws:iam::000000000000:role/NoDeletes".into();
        },
        |_| {},
    )
    .await;
    let credentials = credentials_of(&app, &user(&app, "alice").await).await;
    let (status, created, _) =
        signed(&app, &credentials, Signed::new("POST", "/v1/todos").body(json!({"title": "kept"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/v1/todos/{}", created["id"].as_str().expect("id"));
    let (status, body, kind) = signed(&app, &credentials, Signed::new("DELETE", &path)).await;
    assert_eq!((status, kind.as_deref()), (StatusCode::FORBIDDEN, Some("AccessDeniedException")));
    assert!(body["message"].as_str().expect("message").ends_with("with an explicit deny"), "{body}");
    let (status, _, _) = signed(&app, &credentials, Signed::new("GET", &path)).await;
    assert_eq!(status, StatusCode::OK, "still there");
    app.stop().await;
}

/// Tokens the test authorizer knows: `allow:<sub>` may do anything with the todos,
/// `read:<sub>` only GET them, `deny:<sub>` nothing (an explicit Deny), `fail` makes it fail,
/// and any other is refused.
async fn test_authorizer(
    event: AuthorizerEvent,
) -> Result<AuthorizerResponse, stratus::services::functions::FunctionError> {
    let AuthorizerEvent::Token { authorization_token, .. } = event else {
        return Err("expected a token event".into());
    };
    let token = authorization_token.strip_prefix("Bearer ").unwrap_or(&authorization_token);
    let any = format!("{TODOS_ARN}/*/v1/todos*");
    match token.split_once(':') {
        Some(("allow", sub)) => {
            Ok(AuthorizerResponse::allow(sub, &any).with_context("groups", "partners, beta"))
        }
        Some(("read", sub)) => Ok(AuthorizerResponse::allow(sub, &format!("{TODOS_ARN}/GET/v1/todos*"))),
        Some(("deny", sub)) => Ok(AuthorizerResponse::deny(sub, &any)),
        _ if token == "fail" => Err("the partner directory is down".into()),
        _ => Err(Box::new(Unauthorized)),
    }
}

fn partners(kind: AuthorizerKind, identity_source: &[&str]) -> impl FnOnce(&mut Config) {
    let identity_source = identity_source.iter().map(|source| (*source).to_owned()).collect();
    move |config| {
        todos_behind(config, "partners");
        config.gateway.authorizers.insert(
            "partners".into(),
            FunctionAuthorizerConfig {
                function: "partners-authorizer".into(),
                kind,
                identity_source,
                ttl: Duration::from_secs(300),
            },
        );
    }
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method.parse().expect("method"), format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_function_authorizer_vouches_for_callers_and_its_answer_is_cached_by_token() {
    let invocations = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&invocations);
    let app = TestApp::spawn_with(partners(AuthorizerKind::Token, &["header.Authorization"]), move |app| {
        app.host_mut()
            .on_authorize("partners-authorizer", move |_, event| {
                counted.fetch_add(1, Ordering::SeqCst);
                test_authorizer(event)
            })
            .expect("register");
    })
    .await;

    let (status, created) =
        call(&app, Some("allow:partner-7"), "POST", "/v1/todos", Some(json!({"title": "via partner"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, page) = call(&app, Some("allow:partner-7"), "GET", "/v1/todos", None).await;
    assert_eq!((status, titles(&page)), (StatusCode::OK, vec!["via partner".to_owned()]));
    assert_eq!(invocations.load(Ordering::SeqCst), 1, "the second call used the cached answer");
    // The principal id is the owner: another principal sees nothing of it.
    let (_, page) = call(&app, Some("allow:partner-8"), "GET", "/v1/todos", None).await;
    assert!(titles(&page).is_empty());

    // The cached policy is evaluated for each method: a read-only token cannot write.
    let (status, _) = call(&app, Some("read:partner-7"), "GET", "/v1/todos", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        call(&app, Some("read:partner-7"), "POST", "/v1/todos", Some(json!({"title": "no"}))).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"Message": "User is not authorized to access this resource"}))
    );
    let (status, body) = call(&app, Some("deny:partner-7"), "GET", "/v1/todos", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"Message": "User is not authorized to access this resource with an explicit deny"})
        )
    );
    let (status, body) = call(&app, Some("nonsense"), "GET", "/v1/todos", None).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"})));
    let before = invocations.load(Ordering::SeqCst);
    let (status, _) = call(&app, None, "GET", "/v1/todos", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(invocations.load(Ordering::SeqCst), before, "no identity source: the function is not asked");
    let (status, body) = call(&app, Some("fail"), "GET", "/v1/todos", None).await;
    assert_eq!((status, body), (StatusCode::INTERNAL_SERVER_ERROR, json!({"message": null})));

    // Past the TTL the function is asked again.
    let before = invocations.load(Ordering::SeqCst);
    app.clock.advance(Duration::from_secs(301));
    let (status, _) = call(&app, Some("allow:partner-7"), "GET", "/v1/todos?done=false", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invocations.load(Ordering::SeqCst), before + 1);

    let (_, page) = call(&app, Some("allow:partner-7"), "GET", "/v1/todos", None).await;
    assert_eq!(titles(&page), ["via partner"], "only the allowed write happened");
    app.stop().await;
}

#[tokio::test]
async fn a_request_authorizer_gets_the_requests_identity_sources_and_parameters() {
    let events: Recorder<AuthorizerEvent> = Recorder::default();
    let recorded = events.clone();
    let sources = ["header.X-Partner", "header.X-Tenant"];
    let app = TestApp::spawn_with(partners(AuthorizerKind::Request, &sources), move |app| {
        app.host_mut()
            .on_authorize("partners-authorizer", move |_, event: AuthorizerEvent| {
                recorded.push(event.clone());
                async move { Ok(AuthorizerResponse::allow("tenant-a", &format!("{TODOS_ARN}/*"))) }
            })
            .expect("register");
    })
    .await;
    // Without both identity sources the caller is refused before the function runs.
    let (status, _) = call(&app, Some("Bearer x"), "GET", "/v1/todos", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = app
        .http
        .get(format!("{}/v1/todos/0190a3c0-0000-7000-8000-000000000000", app.base))
        .header("x-partner", "acme")
        .header("x-tenant", "a")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "allowed, and the todo is not the tenant's");
    let [AuthorizerEvent::Request(event)] = &events.all()[..] else {
        panic!("one request event: {:?}", events.all())
    };
    assert_eq!(event.method_arn, format!("{TODOS_ARN}/GET/v1/todos/0190a3c0-0000-7000-8000-000000000000"));
    assert_eq!((event.resource.as_str(), event.http_method.as_str()), ("/v1/todos/{id}", "GET"));
    assert_eq!(event.headers.get("x-partner").map(String::as_str), Some("acme"));
    assert_eq!(event.headers.get("x-tenant").map(String::as_str), Some("a"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("0190a3c0-0000-7000-8000-000000000000")
    );
    assert_eq!(
        (event.request_context.stage.as_str(), event.request_context.api_id.as_str()),
        ("test", "stratus")
    );
    assert!(!event.request_context.identity.source_ip.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn serving_refuses_to_start_when_an_authorizer_function_is_not_registered() {
    let dir = tempfile::TempDir::new().expect("dir");
    let mut config = crate::support::test_config(dir.path());
    partners(AuthorizerKind::Token, &["header.Authorization"])(&mut config);
    let clock = Arc::new(stratus::infra::clock::ManualClock::new(SystemTime::now()));
    let app = stratus::app::Application::build_with_clock(config, clock).await.expect("build");
    let error = app.run(async {}).await.expect_err("refused");
    assert!(error.to_string().contains("partners-authorizer"), "{error}");
}
