//! `/v1/todos` through HTTP, signed in as the mobile app's users are: each user's own todos,
//! optimistic concurrency, filters and pages, limits, attachments in the user's own folder —
//! and every bad request refused with nothing written.

use std::collections::BTreeMap;

use object_store::{ObjectStoreExt as _, PutPayload};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

pub const PASSWORD: &str = "Correct-Horse-9";

pub struct User {
    pub token: String,
    pub id_token: String,
}

pub async fn user(app: &TestApp, name: &str) -> User {
    let tokens = app.signed_in_user(name, PASSWORD).await;
    let result = &tokens["AuthenticationResult"];
    User {
        token: result["AccessToken"].as_str().expect("access token").to_owned(),
        id_token: result["IdToken"].as_str().expect("id token").to_owned(),
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub body: Value,
}

pub async fn call(
    app: &TestApp,
    user: &User,
    method: &str,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Reply {
    let mut request = app
        .http
        .request(method.parse().expect("method"), format!("{}{path}", app.base))
        .bearer_auth(&user.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().expect("header").to_owned());
    let (status, etag, location) = (response.status(), header("etag"), header("location"));
    let body = response.json().await.unwrap_or(Value::Null);
    Reply { status, etag, location, body }
}

pub async fn create(app: &TestApp, user: &User, body: Value) -> Value {
    let reply = call(app, user, "POST", "/v1/todos", Some(body), None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn list(app: &TestApp, user: &User, query: &str) -> Value {
    let reply = call(app, user, "GET", &format!("/v1/todos{query}"), None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

pub fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["title"].as_str().expect("title").to_owned())
        .collect()
}

fn pointers(problem: &Value) -> Vec<String> {
    let mut found: Vec<String> = problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["pointer"].as_str().expect("pointer").to_owned()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::test]
async fn a_todo_is_created_read_edited_with_its_etag_and_deleted() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let body = json!({"title": "Buy milk", "notes": "*semi-skimmed*", "due": "2026-12-24T18:00:00+01:00",
        "priority": 2, "tags": ["errands", "home"]});
    let created = call(&app, &alice, "POST", "/v1/todos", Some(body), None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let todo = created.body;
    let id = todo["id"].as_str().expect("id");
    assert_eq!(created.location.as_deref(), Some(format!("/v1/todos/{id}").as_str()));
    assert_eq!(created.etag.as_deref(), Some("\"v1\""));
    assert_eq!(todo["due"], "2026-12-24T17:00:00Z", "normalized to UTC");
    assert_eq!((todo["done"].clone(), todo["version"].clone()), (json!(false), json!(1)));

    let read = call(&app, &alice, "GET", &format!("/v1/todos/{id}"), None, None).await;
    assert_eq!((read.status, read.body.clone()), (StatusCode::OK, todo.clone()));

    let path = format!("/v1/todos/{id}");
    let unconditional = call(&app, &alice, "PATCH", &path, Some(json!({"done": true})), None).await;
    assert_eq!(unconditional.status, StatusCode::PRECONDITION_REQUIRED);
    let edited =
        call(&app, &alice, "PATCH", &path, Some(json!({"done": true, "due": null})), Some("\"v1\"")).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.etag.as_deref(), Some("\"v2\""));
    assert_eq!((edited.body["done"].clone(), edited.body["due"].clone()), (json!(true), Value::Null));
    assert_eq!(edited.body["title"], "Buy milk", "fields not sent are kept");
    let stale = call(&app, &alice, "PATCH", &path, Some(json!({"done": false})), Some("\"v1\"")).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let read = call(&app, &alice, "GET", &path, None, None).await;
    assert_eq!(read.body["done"], json!(true), "the stale edit wrote nothing");

    let stale = call(&app, &alice, "DELETE", &path, None, Some("\"v1\"")).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        call(&app, &alice, "DELETE", &path, None, Some("\"v2\"")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(call(&app, &alice, "GET", &path, None, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, &alice, "DELETE", &path, None, None).await.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn another_users_todo_is_not_found_and_ownership_cannot_be_given_away() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let todo = create(&app, &alice, json!({"title": "Alice's secret"})).await;
    let path = format!("/v1/todos/{}", todo["id"].as_str().expect("id"));

    for (method, body) in [("GET", None), ("PATCH", Some(json!({"title": "mine now"}))), ("DELETE", None)] {
        let reply = call(&app, &bob, method, &path, body, Some("\"v1\"")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method}: {}", reply.body);
        assert!(!reply.body.to_string().contains("secret"), "{method} leaked: {}", reply.body);
    }
    assert!(titles(&list(&app, &bob, "").await).is_empty());

    let reassign =
        call(&app, &alice, "PATCH", &path, Some(json!({"owner": "bob", "id": "x"})), Some("\"v1\"")).await;
    assert_eq!(reassign.status, StatusCode::BAD_REQUEST);
    assert_eq!(pointers(&reassign.body), ["/id", "/owner"]);
    let read = call(&app, &alice, "GET", &path, None, None).await;
    assert_eq!((read.status, read.body["version"].clone()), (StatusCode::OK, json!(1)));
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_every_violation_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let send = |body: &'static str, content_type: &'static str| {
        app.http
            .post(format!("{}/v1/todos", app.base))
            .bearer_auth(&alice.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = send("{\"title\": ", "application/json").await.expect("request");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        send("title=x", "application/x-www-form-urlencoded").await.expect("request").status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(100 * 1024));
    let response = app
        .http
        .post(format!("{}/v1/todos", app.base))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let wrong =
        json!({"title": 7, "done": "no", "priority": 4, "due": "soon", "tags": ["ok", ""], "colour": "red"});
    let reply = call(&app, &alice, "POST", "/v1/todos", Some(wrong), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["status"], 400);
    assert_eq!(pointers(&reply.body), ["/colour", "/done", "/due", "/priority", "/tags/1", "/title"]);
    let no_title = call(&app, &alice, "POST", "/v1/todos", Some(json!({"notes": "x"})), None).await;
    assert_eq!(pointers(&no_title.body), ["/title"]);
    let bad_query = call(&app, &alice, "GET", "/v1/todos?limit=0&sort=colour&owner=bob", None, None).await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    assert_eq!(pointers(&bad_query.body), ["?limit", "?owner", "?sort"]);

    let forged = User { token: format!("{}x", alice.token), id_token: String::new() };
    assert_eq!(call(&app, &forged, "GET", "/v1/todos", None, None).await.status, StatusCode::UNAUTHORIZED);
    let anonymous = app.http.get(format!("{}/v1/todos", app.base)).send().await.expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // An ID token is not an access token.
    let id_token = User { token: alice.id_token.clone(), id_token: String::new() };
    assert_eq!(call(&app, &id_token, "GET", "/v1/todos", None, None).await.status, StatusCode::UNAUTHORIZED);

    assert!(titles(&list(&app, &alice, "").await).is_empty(), "nothing was written");
    app.stop().await;
}

#[tokio::test]
async fn listings_filter_sort_and_page_one_users_todos() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    for (title, position, due, tags, done) in [
        ("c", 3, Some("2026-12-03T09:00:00Z"), vec!["work"], false),
        ("a", 1, None, vec!["home"], true),
        ("e", 5, Some("2026-12-01T09:00:00Z"), vec!["work", "urgent"], false),
        ("b", 2, Some("2026-12-02T09:00:00Z"), vec![], false),
        ("d", 4, None, vec!["home", "work"], false),
    ] {
        create(
            &app,
            &alice,
            json!({"title": title, "position": position, "due": due, "tags": tags, "done": done}),
        )
        .await;
    }
    create(&app, &bob, json!({"title": "bob's"})).await;

    assert_eq!(titles(&list(&app, &alice, "").await), ["a", "b", "c", "d", "e"], "by position");
    assert_eq!(titles(&list(&app, &alice, "?order=desc").await), ["e", "d", "c", "b", "a"]);
    assert_eq!(titles(&list(&app, &alice, "?sort=created").await), ["c", "a", "e", "b", "d"]);
    assert_eq!(titles(&list(&app, &alice, "?sort=due").await), ["e", "b", "c"], "only todos with a due date");
    assert_eq!(titles(&list(&app, &alice, "?done=false&tag=work").await), ["c", "d", "e"]);
    let window = "?due_after=2026-12-02T00:00:00Z&due_before=2026-12-03T09:00:00Z";
    assert_eq!(titles(&list(&app, &alice, window).await), ["b"], "after is inclusive, before exclusive");

    let mut seen = Vec::new();
    let mut query = "?limit=2&tag=work".to_owned();
    loop {
        let page = list(&app, &alice, &query).await;
        assert!(page["items"].as_array().expect("items").len() <= 2);
        seen.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&tag=work&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c", "d", "e"]);

    let page = list(&app, &alice, "?limit=2").await;
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let other_order =
        call(&app, &alice, "GET", &format!("/v1/todos?sort=due&cursor={cursor}"), None, None).await;
    assert_eq!(pointers(&other_order.body), ["?cursor"]);
    let other_user = call(&app, &bob, "GET", &format!("/v1/todos?cursor={cursor}"), None, None).await;
    assert_eq!(
        other_user.status,
        StatusCode::BAD_REQUEST,
        "another user's cursor reads nothing: {}",
        other_user.body
    );
    app.stop().await;
}

#[tokio::test]
async fn per_user_limits_are_clear_errors() {
    let app = TestApp::spawn_with(
        |config| {
            config.todos.max_todos_per_user = 2;
            config.todos.max_item_bytes = 2048;
        },
        |_| {},
    )
    .await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let first = create(&app, &alice, json!({"title": "one"})).await;
    create(&app, &alice, json!({"title": "two"})).await;
    let third = call(&app, &alice, "POST", "/v1/todos", Some(json!({"title": "three"})), None).await;
    assert_eq!(third.status, StatusCode::CONFLICT);
    assert!(third.body["detail"].as_str().expect("detail").contains("2 todos"), "{}", third.body);
    create(&app, &bob, json!({"title": "bob's first"})).await;

    let path = format!("/v1/todos/{}", first["id"].as_str().expect("id"));
    assert_eq!(call(&app, &alice, "DELETE", &path, None, None).await.status, StatusCode::NO_CONTENT);
    create(&app, &alice, json!({"title": "three, now that there is room"})).await;

    let big = call(
        &app,
        &alice,
        "POST",
        "/v1/todos",
        Some(json!({"title": "big", "notes": "x".repeat(3000)})),
        None,
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
    let second = &list(&app, &alice, "").await["items"][0];
    let path = format!("/v1/todos/{}", second["id"].as_str().expect("id"));
    let grown =
        call(&app, &alice, "PATCH", &path, Some(json!({"notes": "x".repeat(3000)})), Some("\"v1\"")).await;
    assert_eq!(grown.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", grown.body);
    assert_eq!(call(&app, &alice, "GET", &path, None, None).await.body["version"], 1);
    app.stop().await;
}

#[tokio::test]
async fn of_concurrent_edits_with_the_same_etag_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    let todo = create(&app, &alice, json!({"title": "contended"})).await;
    let path = format!("/v1/todos/{}", todo["id"].as_str().expect("id"));
    let edits = (0..12).map(|n| {
        call(&app, &alice, "PATCH", &path, Some(json!({"title": format!("edit {n}")})), Some("\"v1\""))
    });
    let replies = futures::future::join_all(edits).await;
    let won: Vec<&Reply> = replies.iter().filter(|reply| reply.status == StatusCode::OK).collect();
    assert_eq!(won.len(), 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(
        replies.iter().all(|reply| matches!(reply.status, StatusCode::OK | StatusCode::PRECONDITION_FAILED))
    );
    let read = call(&app, &alice, "GET", &path, None, None).await;
    assert_eq!(
        (read.body["version"].clone(), read.body["title"].clone()),
        (json!(2), won[0].body["title"].clone())
    );
    app.stop().await;
}

#[tokio::test]
async fn attachments_must_exist_in_the_callers_own_folder() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (user(&app, "alice").await, user(&app, "bob").await);
    let pool = app.identity_pools.id_named("default").expect("pools").expect("the default pool");
    let provider = stratus::services::cognito::identity_pool::provider_name("us-east-1", &app.pool_id);
    let identity = |user: &User| {
        let logins = BTreeMap::from([(provider.clone(), user.id_token.clone())]);
        let pools = std::sync::Arc::clone(&app.identity_pools);
        let pool = pool.clone();
        async move { pools.get_id(&pool, &logins).await.expect("identity").id }
    };
    let (alices, bobs) = (identity(&alice).await, identity(&bob).await);
    let files = app.platform.buckets.bucket("user-files").expect("bucket");
    for key in [format!("{alices}/receipt.pdf"), format!("{bobs}/diary.txt")] {
        files.put(&key.as_str().into(), PutPayload::from_static(b"bytes")).await.expect("upload");
    }

    let attach = |keys: Vec<String>| json!({"title": "with files", "attachments": keys});
    let theirs =
        call(&app, &alice, "POST", "/v1/todos", Some(attach(vec![format!("{bobs}/diary.txt")])), None).await;
    assert_eq!(
        (theirs.status, pointers(&theirs.body)),
        (StatusCode::BAD_REQUEST, vec!["/attachments/0".to_owned()])
    );
    let keys = vec![
        format!("{alices}/receipt.pdf"),
        format!("{alices}/missing.pdf"),
        "no-folder.txt".into(),
        format!("{alices}/../{bobs}/diary.txt"),
    ];
    let mixed = call(&app, &alice, "POST", "/v1/todos", Some(attach(keys)), None).await;
    assert_eq!(
        pointers(&mixed.body),
        ["/attachments/1", "/attachments/2", "/attachments/3"],
        "{}",
        mixed.body
    );
    assert!(titles(&list(&app, &alice, "").await).is_empty(), "nothing was written");

    let own = create(&app, &alice, attach(vec![format!("{alices}/receipt.pdf")])).await;
    assert_eq!(own["attachments"], json!([format!("{alices}/receipt.pdf")]));
    app.stop().await;
}

#[tokio::test]
async fn two_users_reading_alternately_through_the_cache_only_ever_see_their_own() {
    let app = TestApp::spawn().await;
    let users = [user(&app, "alice").await, user(&app, "bob").await];
    let mut ids = [Vec::new(), Vec::new()];
    for (n, user) in users.iter().enumerate() {
        for i in 0..5 {
            let todo = create(&app, user, json!({"title": format!("user {n} todo {i}")})).await;
            ids[n].push(todo["id"].as_str().expect("id").to_owned());
        }
    }
    let prefix = |n: usize| format!("user {n} ");
    for round in 0..250 {
        for (n, user) in users.iter().enumerate() {
            let page = list(&app, user, "").await;
            assert!(titles(&page).iter().all(|title| title.starts_with(&prefix(n))), "round {round}: {page}");
            assert_eq!(titles(&page).len(), 5);
            let id = &ids[n][round % 5];
            let own = call(&app, user, "GET", &format!("/v1/todos/{id}"), None, None).await;
            assert!(own.body["title"].as_str().expect("title").starts_with(&prefix(n)));
            let other = &ids[1 - n][round % 5];
            assert_eq!(
                call(&app, user, "GET", &format!("/v1/todos/{other}"), None, None).await.status,
                StatusCode::NOT_FOUND
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_cli_lists_a_users_todos_for_the_operator() {
    let app = TestApp::spawn().await;
    let alice = user(&app, "alice").await;
    create(&app, &alice, json!({"title": "second", "position": 2, "done": true})).await;
    create(&app, &alice, json!({"title": "first", "position": 1, "due": "2026-12-24T18:00:00Z"})).await;
    let data_dir = app.stage_dir().parent().expect("data dir").to_path_buf();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(["todos", "list", "--user", "alice", "--stage", "test", "--data-dir"])
            .arg(&data_dir)
            .args(extra)
            .env("STRATUS_LOG__FILTER", "warn")
            .output()
            .expect("run")
    };
    let output = run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("[ ] ")
            && lines[0].contains("due 2026-12-24T18:00:00Z")
            && lines[0].ends_with("first")
    );
    assert!(lines[1].starts_with("[x] ") && lines[1].ends_with("second"), "{stdout}");
    assert!(lines[2].starts_with("2 shown; 2 todos of at most 5000"), "{stdout}");
    let open = run(&["--done", "false"]);
    assert_eq!(String::from_utf8_lossy(&open.stdout).lines().count(), 2, "one todo and the summary");
    app.stop().await;
}
