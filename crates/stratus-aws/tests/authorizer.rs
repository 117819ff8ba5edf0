//! The authorizer's remote-issuer path against a Cognito user pool's JWKS (moto's server): the
//! tokens a real pool signs are accepted for the configured app clients and nothing else.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use stratus::infra::clock::SystemClock;
use stratus::services::cognito::authorizer::{Authorizer, RemoteIssuer};

/// One Cognito API call on the emulator.
async fn cognito(action: &str, body: Value) -> Value {
    let response = support::unsigned("cognito-idp")
        .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{action}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|error| panic!("{action}: {error}"));
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{action}: {status} {text}");
    serde_json::from_str(&text).expect("json")
}

struct Pool {
    id: String,
    clients: Vec<String>,
}

async fn pool_with_a_user() -> (Pool, String) {
    let pool = cognito("CreateUserPool", json!({ "PoolName": support::unique_name("users") })).await;
    let id = pool["UserPool"]["Id"].as_str().expect("pool id").to_owned();
    let mut clients = Vec::new();
    for name in ["mobile", "other"] {
        let client = cognito(
            "CreateUserPoolClient",
            json!({ "UserPoolId": id, "ClientName": name, "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH"] }),
        )
        .await;
        clients.push(client["UserPoolClient"]["ClientId"].as_str().expect("client id").to_owned());
    }
    cognito("AdminCreateUser", json!({ "UserPoolId": id, "Username": "ada", "MessageAction": "SUPPRESS" }))
        .await;
    cognito(
        "AdminSetUserPassword",
        json!({ "UserPoolId": id, "Username": "ada", "Password": "Correct-Horse-9", "Permanent": true }),
    )
    .await;
    let signed_in = cognito(
        "AdminInitiateAuth",
        json!({
            "UserPoolId": id, "ClientId": clients[0], "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
            "AuthParameters": { "USERNAME": "ada", "PASSWORD": "Correct-Horse-9" },
        }),
    )
    .await;
    let access = signed_in["AuthenticationResult"]["AccessToken"].as_str().expect("access token").to_owned();
    (Pool { id, clients }, access)
}

fn authorizer(pool: &Pool, client_ids: &[String]) -> Authorizer {
    let issuer = RemoteIssuer {
        // The issuer the pool's tokens name; its keys are fetched from the emulator.
        issuer: format!("https://cognito-idp.us-east-1.amazonaws.com/{}", pool.id),
        client_ids: client_ids.to_vec(),
        discovery_url: Some(format!("{}/{}/.well-known/openid-configuration", support::endpoint(), pool.id)),
    };
    Authorizer::new(Vec::new(), &[issuer], Arc::new(SystemClock)).expect("authorizer")
}

#[tokio::test]
async fn a_cognito_pools_access_tokens_are_accepted_for_its_app_clients_only() {
    let (pool, access) = pool_with_a_user().await;
    let principal = authorizer(&pool, &pool.clients[..1]).authenticate(&access).await.expect("a valid token");
    assert_eq!(principal.username, "ada");
    assert_eq!(principal.client_id, pool.clients[0]);
    assert!(!principal.sub.is_empty());

    let other_client = authorizer(&pool, &pool.clients[1..]).authenticate(&access).await;
    assert!(other_client.is_err(), "a token of another app client: {other_client:?}");

    let (head, rest) = access.split_once('.').expect("a JWT");
    let (payload, signature) = rest.split_once('.').expect("a JWT");
    let mut forged_payload = payload.to_owned();
    forged_payload.replace_range(0..1, if payload.starts_with('e') { "f" } else { "e" });
    let forged = format!("{head}.{forged_payload}.{signature}");
    assert!(authorizer(&pool, &pool.clients[..1]).authenticate(&forged).await.is_err(), "a forged token");
}
