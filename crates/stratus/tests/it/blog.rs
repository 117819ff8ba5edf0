//! The blog's posts API, through HTTP.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "Correct-Horse-9";

struct Blog {
    app: TestApp,
    author: String,
    reader: String,
}

impl Blog {
    async fn start() -> Self {
        let app = TestApp::spawn().await;
        app.admin("CreateGroup", json!({"UserPoolId": app.pool_id, "GroupName": "authors"})).await;
        app.signed_in_user("writer", PASSWORD).await;
        app.admin(
            "AdminAddUserToGroup",
            json!({"UserPoolId": app.pool_id, "Username": "writer", "GroupName": "authors"}),
        )
        .await;
        let author = app.sign_in("writer", PASSWORD).await["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token")
            .to_owned();
        let reader = app.signed_in_user("reader", PASSWORD).await["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token")
            .to_owned();
        Self { app, author, reader }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.expect("body");
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn create(&self, token: &str, post: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send(self.app.http.post(self.url("/v1/posts")).bearer_auth(token).json(&post)).await
    }

    async fn publish_new(&self, slug: &str, date: &str, tags: &[&str]) {
        let post = json!({"slug": slug, "title": format!("Post {slug}"), "body": format!("Body of {slug}."),
                          "tags": tags, "publish_date": date, "status": "published"});
        let (status, _, body) = self.create(&self.author, post).await;
        assert_eq!(status, 201, "{body}");
    }
}

fn post(slug: &str) -> Value {
    json!({"slug": slug, "title": "Hello, world", "body": "# Hello\n\nFirst post.", "tags": ["Intro", "rust"]})
}

#[tokio::test]
async fn only_authors_write_and_everyone_reads_what_is_published() {
    let blog = Blog::start().await;
    let (status, headers, body) =
        blog.send(blog.app.http.post(blog.url("/v1/posts")).json(&post("hello"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, body) = blog.create(&blog.reader, post("hello")).await;
    assert_eq!(status, 403, "{body}");

    let (status, headers, body) = blog.create(&blog.author, post("hello")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["location"], "/v1/posts/hello");
    assert_eq!(headers["etag"], "\"v1\"");
    assert_eq!((body["status"].as_str(), body["tags"].clone()), (Some("draft"), json!(["intro", "rust"])));
    assert_eq!(body["summary"], "First post.");

    // A draft is invisible to readers, visible to authors.
    let (status, _, _) = blog.send(blog.app.http.get(blog.url("/v1/posts/hello"))).await;
    assert_eq!(status, 404);
    let (status, _, _) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/hello")).bearer_auth(&blog.reader)).await;
    assert_eq!(status, 404);
    let (status, _, _) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/hello")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 200);
    let (_, _, listing) = blog.send(blog.app.http.get(blog.url("/v1/posts"))).await;
    assert_eq!(listing["items"], json!([]));

    let (status, _, body) =
        blog.send(blog.app.http.post(blog.url("/v1/posts/hello/publish")).bearer_auth(&blog.author)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("published")), "{body}");
    assert!(body["publish_date"].is_string());
    let (status, headers, body) = blog.send(blog.app.http.get(blog.url("/v1/posts/hello"))).await;
    assert_eq!((status, body["title"].as_str()), (200, Some("Hello, world")));
    let (status, _, _) = blog
        .send(blog.app.http.get(blog.url("/v1/posts/hello")).header("if-none-match", headers["etag"].clone()))
        .await;
    assert_eq!(status, 304);
    let (_, _, listing) = blog.send(blog.app.http.get(blog.url("/v1/posts?tag=rust"))).await;
    assert_eq!(listing["items"][0]["slug"], "hello");

    let (status, _, _) =
        blog.send(blog.app.http.post(blog.url("/v1/posts/hello/unpublish")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 200);
    let (_, _, listing) = blog.send(blog.app.http.get(blog.url("/v1/posts?tag=rust"))).await;
    assert_eq!(listing["items"], json!([]), "unpublished posts leave the tag listing");
    let (status, _, _) =
        blog.send(blog.app.http.delete(blog.url("/v1/posts/hello")).bearer_auth(&blog.reader)).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        blog.send(blog.app.http.delete(blog.url("/v1/posts/hello")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 204);
    let (status, _, _) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/hello")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 404);
    blog.app.stop().await;
}

#[tokio::test]
async fn slugs_are_unique_and_concurrent_edits_are_detected() {
    let blog = Blog::start().await;
    let (status, _, _) = blog.create(&blog.author, post("unique")).await;
    assert_eq!(status, 201);
    let (status, headers, body) = blog.create(&blog.author, post("unique")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");

    let edit = |title: &str| json!({"title": title, "body": "Edited.", "tags": ["rust"]});
    let put = |etag: Option<&str>, title: &str| {
        let mut request =
            blog.app.http.put(blog.url("/v1/posts/unique")).bearer_auth(&blog.author).json(&edit(title));
        if let Some(etag) = etag {
            request = request.header("if-match", etag);
        }
        request
    };
    let (status, _, _) = blog.send(put(None, "No precondition")).await;
    assert_eq!(status, 428, "an edit without If-Match is refused");
    let (status, headers, body) = blog.send(put(Some("\"v1\""), "First edit")).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(headers["etag"], "\"v2\"");
    let (status, _, body) = blog.send(put(Some("\"v1\""), "Stale edit")).await;
    assert_eq!(status, 412, "{body}");
    let (_, _, current) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/unique")).bearer_auth(&blog.author)).await;
    assert_eq!(current["title"], "First edit", "the stale edit changed nothing");
    blog.app.stop().await;
}

#[tokio::test]
async fn listings_paginate_newest_first_by_cursor() {
    let blog = Blog::start().await;
    for day in 1..=23 {
        let tags: &[&str] = if day % 2 == 0 { &["even"] } else { &[] };
        blog.publish_new(&format!("post-{day:02}"), &format!("2026-11-{day:02}T09:00:00Z"), tags).await;
    }
    blog.create(
        &blog.author,
        json!({"slug": "draft", "title": "Draft", "body": "x", "publish_date": "2026-12-01T00:00:00Z"}),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            None => blog.url("/v1/posts?limit=10"),
            Some(cursor) => blog.url(&format!("/v1/posts?limit=10&cursor={cursor}")),
        };
        let (status, _, page) = blog.send(blog.app.http.get(url)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| item["slug"].as_str().expect("slug").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=23).rev().map(|day| format!("post-{day:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let (_, _, even) = blog.send(blog.app.http.get(blog.url("/v1/posts?tag=even&limit=100"))).await;
    assert_eq!(even["items"].as_array().expect("items").len(), 11);
    let (status, _, _) = blog.send(blog.app.http.get(blog.url("/v1/posts?cursor=garbage"))).await;
    assert_eq!(status, 400);
    let (status, _, _) = blog.send(blog.app.http.get(blog.url("/v1/posts?limit=1000"))).await;
    assert_eq!(status, 400);
    blog.app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_document_and_changes_nothing() {
    let blog = Blog::start().await;
    let raw = |content_type: &str, body: Vec<u8>| {
        blog.app
            .http
            .post(blog.url("/v1/posts"))
            .bearer_auth(&blog.author)
            .header("content-type", content_type)
            .body(body)
    };
    let cases = [
        (raw("application/json", b"{not json".to_vec()), 400),
        (raw("text/plain", post("x").to_string().into_bytes()), 415),
        (
            raw(
                "application/json",
                json!({"slug": "x", "title": "t", "body": "b", "colour": "red"}).to_string().into_bytes(),
            ),
            400,
        ),
        (
            raw(
                "application/json",
                json!({"slug": "../etc", "title": "t", "body": "b"}).to_string().into_bytes(),
            ),
            400,
        ),
        (
            raw("application/json", json!({"slug": "ok", "title": "", "body": "b"}).to_string().into_bytes()),
            400,
        ),
        (
            raw(
                "application/json",
                json!({"slug": "ok", "title": "t", "body": "b", "tags": ["c++"]}).to_string().into_bytes(),
            ),
            400,
        ),
        (
            raw(
                "application/json",
                json!({"slug": "ok", "title": "t", "body": "b", "publish_date": "yesterday"})
                    .to_string()
                    .into_bytes(),
            ),
            400,
        ),
        (
            raw(
                "application/json",
                json!({"slug": "ok", "title": "t", "body": "x".repeat(2 * 1024 * 1024)})
                    .to_string()
                    .into_bytes(),
            ),
            413,
        ),
    ];
    for (request, expected) in cases {
        let (status, headers, body) = blog.send(request).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    let (status, _, _) = blog.send(blog.app.http.get(blog.url("/v1/posts/..%2F..%2Fetc"))).await;
    assert_eq!(status, 404);
    let (_, _, listing) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/ok")).bearer_auth(&blog.author)).await;
    assert_eq!(listing["status"], 404, "nothing was created");
    blog.app.stop().await;
}
