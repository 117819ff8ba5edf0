//! The API's JWT authorizer, attacked the ways JWT verifiers are usually broken.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use stratus::infra::http::Problem;
use stratus::services::cognito::authorizer::Principal;

use crate::support::TestApp;

const PASSWORD: &str = "Correct-Horse-9";

async fn me(principal: Principal) -> Json<Value> {
    Json(
        json!({ "sub": principal.sub, "username": principal.username, "groups": principal.groups, "scopes": principal.scopes }),
    )
}

async fn authors_only(principal: Principal) -> Result<&'static str, Problem> {
    principal.require_group("authors")?;
    Ok("welcome, author")
}

async fn spawn_api(configure: impl FnOnce(&mut stratus::config::Config)) -> TestApp {
    TestApp::spawn_with(configure, |app| {
        let routes = Router::new()
            .route("/v1/me", get(me))
            .route("/v1/authors", get(authors_only))
            .with_state(Arc::clone(app.authorizer()));
        app.mount(routes);
    })
    .await
}

async fn call(app: &TestApp, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    if status == 401 {
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    (status, response.text().await.expect("body"))
}

/// The pool's current signing key, read from the stage database as an attacker with a copy of
/// the key would hold it (to forge otherwise-valid tokens with one thing wrong).
fn pool_key(app: &TestApp) -> String {
    let connection = rusqlite::Connection::open(app.platform.db.path()).expect("db");
    connection
        .query_row("SELECT private_pem FROM identity_keys WHERE retired_at IS NULL", [], |row| row.get(0))
        .expect("key")
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() as i64
}

fn claims(app: &TestApp, sub: &str) -> Value {
    json!({
        "sub": sub, "iss": format!("{}/{}", app.base, app.pool_id), "client_id": app.client_id,
        "origin_jti": "forged-family", "event_id": "e", "token_use": "access", "scope": "aws.cognito.signin.user.admin",
        "auth_time": now(), "iat": now(), "exp": now() + 600, "jti": "j", "username": "mallory",
    })
}

fn sign_with(pem: &str, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).expect("key"))
        .expect("sign")
}

fn rs256(kid: &str) -> Header {
    Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::RS256) }
}

#[tokio::test]
async fn forged_and_misused_tokens_are_refused() {
    let app = spawn_api(|_| {}).await;
    let tokens = app.signed_in_user("victim", PASSWORD).await;
    let access = tokens["AuthenticationResult"]["AccessToken"].as_str().expect("access").to_owned();
    let id_token = tokens["AuthenticationResult"]["IdToken"].as_str().expect("id").to_owned();
    assert_eq!(call(&app, "/v1/me", Some(&access)).await.0, 200, "the genuine token works");

    let real_kid = jsonwebtoken::decode_header(&access).expect("header").kid.expect("kid");
    let real_key = pool_key(&app);
    let attacker = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("key");
    let attacker_pem = attacker.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
    let public_pem = rsa::RsaPrivateKey::from_pkcs8_pem(&real_key)
        .expect("parse")
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public pem");
    let valid = claims(&app, "victim-sub");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = valid.clone();
        change(&mut claims);
        claims
    };
    use base64::Engine as _;
    let b64 = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let attacker_jwk: jsonwebtoken::jwk::Jwk = {
        use rsa::traits::PublicKeyParts as _;
        let public = attacker.to_public_key();
        serde_json::from_value(json!({
            "kty": "RSA", "kid": real_kid, "alg": "RS256",
            "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }))
        .expect("jwk")
    };

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": real_kid})), b64(&valid)),
        ),
        ("HS256 signed with the public key", {
            let header = Header { kid: Some(real_kid.clone()), ..Header::new(Algorithm::HS256) };
            jsonwebtoken::encode(&header, &valid, &EncodingKey::from_secret(public_pem.as_bytes()))
                .expect("hs256")
        }),
        ("unknown kid", sign_with(&attacker_pem, &rs256("attacker-kid"), &valid)),
        (
            "injected jwk",
            sign_with(&attacker_pem, &Header { jwk: Some(attacker_jwk), ..rs256(&real_kid) }, &valid),
        ),
        (
            "injected jku",
            sign_with(
                &attacker_pem,
                &Header { jku: Some("http://127.0.0.1:9/jwks.json".into()), ..rs256(&real_kid) },
                &valid,
            ),
        ),
        (
            "wrong issuer",
            sign_with(
                &real_key,
                &rs256(&real_kid),
                &with(&|c| c["iss"] = json!("https://evil.example/pool")),
            ),
        ),
        (
            "wrong audience",
            sign_with(
                &real_key,
                &rs256(&real_kid),
                &with(&|c| c["client_id"] = json!("someotherclient0000000000a")),
            ),
        ),
        ("expired", sign_with(&real_key, &rs256(&real_kid), &with(&|c| c["exp"] = json!(now() - 120)))),
        ("not yet valid", sign_with(&real_key, &rs256(&real_kid), &with(&|c| c["nbf"] = json!(now() + 300)))),
        ("id token as access token", id_token.clone()),
        ("garbage", "not.a.token".into()),
        ("tampered payload", {
            let parts: Vec<&str> = access.split('.').collect();
            format!("{}.{}.{}", parts[0], b64(&with(&|c| c["username"] = json!("admin"))), parts[2])
        }),
    ];
    for (name, token) in &attacks {
        let (status, body) = call(&app, "/v1/me", Some(token)).await;
        assert_eq!(status, 401, "{name} must be refused: {body}");
    }
    // Within the 60-second skew a token is still accepted.
    let skewed = sign_with(&real_key, &rs256(&real_kid), &with(&|c| c["exp"] = json!(now() - 30)));
    assert_eq!(call(&app, "/v1/me", Some(&skewed)).await.0, 200);
    assert_eq!(call(&app, "/v1/me", None).await.0, 401);

    let (status, _) = app.cognito("GlobalSignOut", json!({"AccessToken": access})).await;
    assert_eq!(status, 200);
    assert_eq!(call(&app, "/v1/me", Some(&access)).await.0, 401, "a token after GlobalSignOut is refused");
    app.stop().await;
}

#[tokio::test]
async fn handlers_receive_the_principal_and_groups_gate_actions() {
    let app = spawn_api(|_| {}).await;
    let reader = app.signed_in_user("reader", PASSWORD).await;
    let reader_token = reader["AuthenticationResult"]["AccessToken"].as_str().expect("token").to_owned();
    let (status, body) = call(&app, "/v1/me", Some(&reader_token)).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["username"], "reader");
    assert_eq!(body["scopes"], json!(["aws.cognito.signin.user.admin"]));
    let (status, body) = call(&app, "/v1/authors", Some(&reader_token)).await;
    assert_eq!(status, 403, "{body}");

    app.admin("CreateGroup", json!({"UserPoolId": app.pool_id, "GroupName": "authors"})).await;
    app.admin(
        "AdminAddUserToGroup",
        json!({"UserPoolId": app.pool_id, "Username": "reader", "GroupName": "authors"}),
    )
    .await;
    let author = app.sign_in("reader", PASSWORD).await;
    let (status, body) = call(
        &app,
        "/v1/authors",
        Some(author["AuthenticationResult"]["AccessToken"].as_str().expect("token")),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "welcome, author"));
    app.stop().await;
}

#[tokio::test]
async fn tokens_of_a_remote_oidc_issuer_are_accepted_through_its_jwks() {
    let issuer_app = TestApp::spawn().await;
    let issuer = format!("{}/{}", issuer_app.base, issuer_app.pool_id);
    let remote_client = issuer_app.client_id.clone();
    let api = spawn_api(|config| {
        config.identity.issuers = vec![stratus::services::cognito::authorizer::RemoteIssuer {
            issuer: issuer.clone(),
            client_ids: vec![remote_client],
            discovery_url: None,
        }];
    })
    .await;
    let tokens = issuer_app.signed_in_user("federated", PASSWORD).await;
    let access = tokens["AuthenticationResult"]["AccessToken"].as_str().expect("token").to_owned();
    let (status, body) = call(&api, "/v1/me", Some(&access)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["username"], "federated");
    let id_token = tokens["AuthenticationResult"]["IdToken"].as_str().expect("token").to_owned();
    assert_eq!(call(&api, "/v1/me", Some(&id_token)).await.0, 401);

    let strict = spawn_api(|config| {
        config.identity.issuers = vec![stratus::services::cognito::authorizer::RemoteIssuer {
            issuer: issuer.clone(),
            client_ids: vec!["otherclient".into()],
            discovery_url: None,
        }];
    })
    .await;
    assert_eq!(
        call(&strict, "/v1/me", Some(&access)).await.0,
        401,
        "tokens for other app clients are refused"
    );
    strict.stop().await;
    api.stop().await;
    issuer_app.stop().await;
}

#[tokio::test]
async fn an_access_token_expires_by_the_systems_clock_even_once_verified() {
    let app = spawn_api(|_| {}).await;
    let signed_in = app.signed_in_user("clocked", PASSWORD).await;
    let token = signed_in["AuthenticationResult"]["AccessToken"].as_str().expect("token").to_owned();
    assert_eq!(call(&app, "/v1/me", Some(&token)).await.0, 200, "verified and remembered");

    // An hour and two minutes later (past the 60 s of leeway), the remembered token is refused.
    app.clock.advance(std::time::Duration::from_secs(3600 + 120));
    assert_eq!(call(&app, "/v1/me", Some(&token)).await.0, 401);
    let fresh = app.sign_in("clocked", PASSWORD).await["AuthenticationResult"]["AccessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(call(&app, "/v1/me", Some(&fresh)).await.0, 200);
    app.stop().await;
}
