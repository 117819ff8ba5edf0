//! The gateway in front of the APIs, through HTTP: API keys and usage plans (403, 429 with
//! `Retry-After`, quotas that survive a restart), the stage's and methods' throttles, and the
//! response cache per caller.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use stratus::config::Config;
use stratus::services::gateway::{ApiKeys, MAX_CACHE_TTL, PlanConfig, QuotaPeriod, Throttle};

use crate::support::TestApp;
use crate::todos::{User, create, user};

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn get(app: &TestApp, user: &User, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.http.get(format!("{}{path}", app.base)).bearer_auth(&user.token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    Reply { status, headers, body: response.json().await.unwrap_or(Value::Null) }
}

fn x_cache(reply: &Reply) -> &str {
    reply.headers.get("x-cache").map_or("none", |value| value.to_str().expect("x-cache"))
}

fn plans(config: &mut Config, rate: u32, burst: u32, quota: Option<u64>) {
    config.gateway.plans.insert("free".into(), PlanConfig { rate, burst, quota, period: QuotaPeriod::Day });
}

fn new_key(app: &TestApp, plan: &str) -> (String, String) {
    let keys = ApiKeys::open(Arc::clone(&app.platform.db)).expect("keys");
    let (record, key) = keys.create("test app", plan, 0).expect("create");
    (record.id, key)
}

#[tokio::test]
async fn with_usage_plans_the_todos_api_needs_a_valid_key() {
    let app = TestApp::spawn_with(|config| plans(config, 100, 100, None), |_| {}).await;
    let alice = user(&app, "alice").await;
    let (id, key) = new_key(&app, "free");

    for presented in [None, Some("wrong-key"), Some("")] {
        let headers: Vec<(&str, &str)> = presented.map(|key| ("x-api-key", key)).into_iter().collect();
        let reply = get(&app, &alice, "/v1/todos", &headers).await;
        assert_eq!(
            (reply.status, reply.body.clone()),
            (StatusCode::FORBIDDEN, json!({"message": "Forbidden"}))
        );
        assert_eq!(reply.headers["x-amzn-errortype"], "ForbiddenException");
    }
    assert_eq!(get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await.status, StatusCode::OK);
    // The blog's API does not require one.
    let posts = app.http.get(format!("{}/v1/posts", app.base)).send().await.expect("request");
    assert_eq!(posts.status(), StatusCode::OK);

    let keys = ApiKeys::open(Arc::clone(&app.platform.db)).expect("keys");
    assert!(keys.revoke(&id, 0).expect("revoke"));
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_flood_over_the_plans_rate_is_throttled_with_retry_after() {
    let app = TestApp::spawn_with(|config| plans(config, 1, 3, None), |_| {}).await;
    let alice = user(&app, "alice").await;
    let (_, key) = new_key(&app, "free");
    let (_, other) = new_key(&app, "free");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|reply| reply.status.as_u16()).collect();
    assert_eq!(&codes[..3], [200, 200, 200], "the burst is admitted");
    let throttled = statuses.last().expect("reply");
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.body, json!({"message": "Too Many Requests"}));
    let retry: u64 = throttled.headers["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(
        get(&app, &alice, "/v1/todos", &[("x-api-key", &other)]).await.status,
        StatusCode::OK,
        "per key"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_used_up_quota_is_limit_exceeded_until_the_next_period_even_across_a_restart() {
    let configure = |config: &mut Config| plans(config, 100, 100, Some(3));
    let app = TestApp::spawn_with(configure, |_| {}).await;
    let alice = user(&app, "alice").await;
    let (_, key) = new_key(&app, "free");
    for _ in 0..2 {
        assert_eq!(get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await.status, StatusCode::OK);
    }
    let app = app.restart(configure).await;
    // The restarted server listens on another port, so its tokens name another issuer.
    let tokens = app.sign_in("alice", crate::todos::PASSWORD).await;
    let alice = User {
        token: tokens["AuthenticationResult"]["AccessToken"].as_str().expect("token").into(),
        id_token: String::new(),
    };
    assert_eq!(get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await.status, StatusCode::OK);
    let over = get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await;
    assert_eq!(
        (over.status, over.body.clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!({"message": "Limit Exceeded"}))
    );
    let retry: u64 = over.headers["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!(retry <= 86_400, "until the next UTC day: {retry}");

    app.clock.advance(Duration::from_secs(retry));
    let tokens = app.sign_in("alice", crate::todos::PASSWORD).await;
    let alice = User {
        token: tokens["AuthenticationResult"]["AccessToken"].as_str().expect("token").into(),
        id_token: String::new(),
    };
    assert_eq!(
        get(&app, &alice, "/v1/todos", &[("x-api-key", &key)]).await.status,
        StatusCode::OK,
        "a new day"
    );
    app.stop().await;
}

#[tokio::test]
async fn stage_and_method_throttles_apply_to_every_api() {
    let app = TestApp::spawn_with(
        |config| {
            config.gateway.methods.insert("GET /v1/posts".into(), Throttle { rate: 1, burst: 1 });
        },
        |_| {},
    )
    .await;
    let alice = user(&app, "alice").await;
    let posts = || app.http.get(format!("{}/v1/posts", app.base)).send();
    assert_eq!(posts().await.expect("request").status(), StatusCode::OK);
    let throttled = posts().await.expect("request");
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(get(&app, &alice, "/v1/todos", &[]).await.status, StatusCode::OK, "other methods are not");
    app.stop().await;

    let app =
        TestApp::spawn_with(|config| (config.gateway.rate, config.gateway.burst) = (1, 2), |_| {}).await;
    let codes: Vec<u16> = futures::future::join_all((0..4).map(|_| async {
        app.http.get(format!("{}/v1/posts?tag=a", app.base)).send().await.expect("request").status().as_u16()
    }))
    .await;
    assert_eq!(codes.iter().filter(|code| **code == 429).count(), 2, "{codes:?}");
    app.stop().await;
}

#[tokio::test]
async fn responses_are_cached_per_caller_and_forgotten_when_that_callers_data_changes() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let todo = create(&app, &alice, json!({"title": "alice's"})).await;
    create(&app, &bob, json!({"title": "bob's"})).await;

    assert_eq!(x_cache(&get(&app, &alice, "/v1/todos", &[]).await), "Miss from stratus-gateway");
    let hit = get(&app, &alice, "/v1/todos", &[]).await;
    assert_eq!(
        (x_cache(&hit), hit.body["items"][0]["title"].clone()),
        ("Hit from stratus-gateway", json!("alice's"))
    );
    let bobs = get(&app, &bob, "/v1/todos", &[]).await;
    assert_eq!(
        (x_cache(&bobs), bobs.body["items"][0]["title"].clone()),
        ("Miss from stratus-gateway", json!("bob's"))
    );
    assert_eq!(x_cache(&get(&app, &bob, "/v1/todos", &[]).await), "Hit from stratus-gateway");

    // Alice's edit ends her entries, not Bob's.
    let path = format!("/v1/todos/{}", todo["id"].as_str().expect("id"));
    let edit =
        app.http.patch(format!("{}{path}", app.base)).bearer_auth(&alice.token).header("if-match", "\"v1\"");
    assert_eq!(
        edit.json(&json!({"title": "edited"})).send().await.expect("request").status(),
        StatusCode::OK
    );
    let fresh = get(&app, &alice, "/v1/todos", &[]).await;
    assert_eq!(
        (x_cache(&fresh), fresh.body["items"][0]["title"].clone()),
        ("Miss from stratus-gateway", json!("edited"))
    );
    assert_eq!(x_cache(&get(&app, &bob, "/v1/todos", &[]).await), "Hit from stratus-gateway");

    // A caller may ask for a fresh answer to their own request.
    let refreshed = get(&app, &alice, "/v1/todos", &[("cache-control", "max-age=0")]).await;
    assert_eq!(x_cache(&refreshed), "Miss from stratus-gateway");

    // A change by another writer (the CLI, say) reaches the cache through the change stream.
    let table = app.platform.table(stratus::apps::todos::store::table_spec()).expect("table");
    let key = stratus::item! {"pk" => format!("USER#{}", sub_of(&app, "bob").await), "sk" => "COUNT"};
    stratus::ports::table::Table::update(
        &table,
        &key,
        &[stratus::ports::table::UpdateAction::add("count", 1)],
        None,
    )
    .await
    .expect("update");
    app.drain().await;
    assert_eq!(x_cache(&get(&app, &bob, "/v1/todos", &[]).await), "Miss from stratus-gateway");
    assert_eq!(x_cache(&get(&app, &alice, "/v1/todos", &[]).await), "Hit from stratus-gateway");

    // Lifetimes follow the stage's clock.
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(x_cache(&get(&app, &alice, "/v1/todos", &[]).await), "Miss from stratus-gateway");
    app.stop().await;
}

#[tokio::test]
async fn a_cached_response_is_not_served_to_a_token_signed_out_or_expired_since() {
    let app = TestApp::spawn_with(|config| config.gateway.cache_ttl = MAX_CACHE_TTL, |_| {}).await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    create(&app, &alice, json!({"title": "alice's"})).await;
    create(&app, &bob, json!({"title": "bob's"})).await;
    // Late in the tokens' hour, both lists cached for the longest lifetime there is.
    app.clock.advance(Duration::from_secs(3000));
    for user in [&alice, &bob] {
        assert_eq!(x_cache(&get(&app, user, "/v1/todos", &[]).await), "Miss from stratus-gateway");
        assert_eq!(x_cache(&get(&app, user, "/v1/todos", &[]).await), "Hit from stratus-gateway");
    }

    let (status, _) = app.cognito("GlobalSignOut", json!({"AccessToken": alice.token})).await;
    assert_eq!(status, 200);
    let signed_out = get(&app, &alice, "/v1/todos", &[]).await;
    assert_eq!((signed_out.status, x_cache(&signed_out)), (StatusCode::UNAUTHORIZED, "none"));

    // Bob's token outlives its hour and the leeway; his entry, 700 s old, would not have.
    app.clock.advance(Duration::from_secs(700));
    let expired = get(&app, &bob, "/v1/todos", &[]).await;
    assert_eq!((expired.status, x_cache(&expired)), (StatusCode::UNAUTHORIZED, "none"));
    app.stop().await;
}

pub async fn sub_of(app: &TestApp, username: &str) -> String {
    let (status, body) =
        app.admin("AdminGetUser", json!({"UserPoolId": app.pool_id, "Username": username})).await;
    assert_eq!(status, 200, "{body}");
    body["UserAttributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|attribute| attribute["Name"] == "sub")
        .and_then(|attribute| attribute["Value"].as_str())
        .expect("sub")
        .to_owned()
}

#[tokio::test]
async fn the_openapi_document_and_its_docs_page_are_served_by_stratus_itself() {
    let app = TestApp::spawn().await;
    let response = app.http.get(format!("{}/v1/openapi.json", app.base)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("json");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["description"], "stage `test`");
    for (path, method) in [("/v1/todos", "post"), ("/v1/todos/{id}", "patch")] {
        assert!(document["paths"][path][method].is_object(), "{path} {method}");
    }
    assert_eq!(document["components"]["schemas"]["NewTodo"]["additionalProperties"], false);

    let page = app.http.get(format!("{}/v1/docs", app.base)).send().await.expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let html = page.text().await.expect("page");
    // (minijinja escapes `/` in HTML.)
    assert!(
        html.contains("<code>&#x2f;v1&#x2f;todos&#x2f;{id}</code>") && html.contains("id=\"schema-NewTodo\""),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing external"
    );
    app.stop().await;
}

#[tokio::test]
async fn requests_are_checked_against_the_document_before_the_function_runs() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let response = app
        .http
        .post(format!("{}/v1/todos", app.base))
        .bearer_auth(&alice.token)
        .json(&json!({"title": 5, "colour": "red", "priority": 9}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.expect("json");
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (e["pointer"].as_str().expect("pointer").into(), e["detail"].as_str().expect("detail").into())
        })
        .collect();
    let pointers: Vec<&str> = errors.iter().map(|(pointer, _)| pointer.as_str()).collect();
    assert_eq!(pointers.len(), 3, "{errors:?}");
    assert!(["/title", "/colour", "/priority"].iter().all(|p| pointers.contains(p)), "{errors:?}");
    // The gateway's words, not the function's: it never ran.
    assert!(
        errors.iter().any(|(p, detail)| p == "/colour" && detail == "is not a field of this request"),
        "{errors:?}"
    );

    let query = get(&app, &alice, "/v1/todos?limit=lots&done=maybe", &[]).await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST);
    let mut pointers: Vec<&str> = query.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["pointer"].as_str().expect("p"))
        .collect();
    pointers.sort_unstable();
    assert_eq!(pointers, ["?done", "?limit"]);
    app.stop().await;
}

#[tokio::test]
async fn admins_manage_api_keys_over_rest_and_a_new_key_is_shown_once() {
    let app = TestApp::spawn_with(|config| plans(config, 100, 100, None), |_| {}).await;
    app.admin("CreateGroup", json!({"UserPoolId": app.pool_id, "GroupName": "admins"})).await;
    let admin = user(&app, "admin").await;
    let membership = json!({"UserPoolId": app.pool_id, "Username": "admin", "GroupName": "admins"});
    assert_eq!(app.admin("AdminAddUserToGroup", membership).await.0, 200);
    let tokens = app.sign_in("admin", crate::todos::PASSWORD).await;
    let admin = User {
        token: tokens["AuthenticationResult"]["AccessToken"].as_str().expect("token").into(),
        ..admin
    };
    let someone = user(&app, "someone").await;

    let create = |who: &User, body: Value| {
        app.http.post(format!("{}/v1/api-keys", app.base)).bearer_auth(&who.token).json(&body).send()
    };
    assert_eq!(
        create(&someone, json!({"name": "x", "plan": "free"})).await.expect("request").status(),
        StatusCode::FORBIDDEN
    );
    let unknown = create(&admin, json!({"name": "x", "plan": "gold"})).await.expect("request");
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json::<Value>().await.expect("json")["errors"][0]["pointer"], "/plan");

    let created = create(&admin, json!({"name": "mobile app", "plan": "free"})).await.expect("request");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let (id, key) = (created["id"].as_str().expect("id"), created["key"].as_str().expect("key"));
    assert_eq!(key.len(), 40);
    let listed = get(&app, &admin, "/v1/api-keys", &[]).await;
    assert_eq!(listed.body["items"][0]["id"], id);
    assert!(!listed.body.to_string().contains(key), "a key is shown once");

    assert_eq!(get(&app, &someone, "/v1/todos", &[("x-api-key", key)]).await.status, StatusCode::OK);
    let revoke = app.http.delete(format!("{}/v1/api-keys/{id}", app.base)).bearer_auth(&admin.token).send();
    assert_eq!(revoke.await.expect("request").status(), StatusCode::NO_CONTENT);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(get(&app, &someone, "/v1/todos", &[("x-api-key", key)]).await.status, StatusCode::FORBIDDEN);
    app.stop().await;
}
