//! The blog's posts API, through HTTP.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "Correct-Horse-9";

pub(crate) struct Blog {
    pub(crate) app: TestApp,
    pub(crate) author: String,
    pub(crate) reader: String,
}

impl Blog {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(configure: impl FnOnce(&mut stratus::config::Config)) -> Self {
        let app = TestApp::spawn_with(configure, |_| {}).await;
        let author = app.author_token("writer", PASSWORD).await;
        let reader = app.signed_in_user("reader", PASSWORD).await["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token")
            .to_owned();
        Self { app, author, reader }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.expect("body");
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn create(&self, token: &str, post: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send(self.app.http.post(self.url("/v1/posts")).bearer_auth(token).json(&post)).await
    }

    pub(crate) async fn publish_new(&self, slug: &str, date: &str, tags: &[&str]) {
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

/// Keys and ETags of everything in the site bucket.
async fn site_objects(blog: &Blog) -> std::collections::BTreeMap<String, String> {
    use futures::TryStreamExt as _;
    use object_store::ObjectStore as _;
    let site = blog.app.platform.buckets.bucket("site").expect("site bucket");
    let objects: Vec<object_store::ObjectMeta> = site.list(None).try_collect().await.expect("list");
    objects.into_iter().map(|meta| (meta.location.to_string(), meta.e_tag.unwrap_or_default())).collect()
}

async fn site_text(blog: &Blog, key: &str) -> String {
    use object_store::ObjectStoreExt as _;
    let site = blog.app.platform.buckets.bucket("site").expect("site bucket");
    let bytes =
        site.get(&object_store::path::Path::from(key)).await.expect(key).bytes().await.expect("bytes");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn publishing_generates_exactly_the_pages_of_the_site() {
    let blog = Blog::start().await;
    let body = "# Hello\n\nFirst *post*.<script>alert('x')</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
    let (status, _, _) = blog
        .create(&blog.author, json!({"slug": "hello", "title": "Hello & welcome", "body": body, "tags": ["intro", "rust"], "status": "published"}))
        .await;
    assert_eq!(status, 201);
    blog.create(&blog.author, json!({"slug": "draft", "title": "Unfinished", "body": "Not yet."})).await;
    blog.app.drain().await;

    let keys: Vec<String> =
        site_objects(&blog).await.into_keys().filter(|key| !key.starts_with("assets/")).collect();
    assert_eq!(
        keys,
        [
            "404.html",
            "feed.xml",
            "index.html",
            "posts/hello/index.html",
            "robots.txt",
            "sitemap.xml",
            "tags/intro/index.html",
            "tags/rust/index.html"
        ]
    );
    let page = site_text(&blog, "posts/hello/index.html").await;
    assert!(page.contains("<title>Hello &amp; welcome"), "titles are escaped");
    assert!(page.contains("<table>") && page.contains(r#"id="hello""#), "markdown rendered with anchors");
    assert!(!page.contains("<script>alert"), "no script from markdown reaches the page");
    assert!(page.contains(r#"action="/v1/subscribers""#), "every page has the subscribe form");
    assert!(!site_text(&blog, "index.html").await.contains("Unfinished"), "drafts are not listed");

    let feed = site_text(&blog, "feed.xml").await;
    let document = roxmltree::Document::parse(&feed).expect("the feed is well-formed XML");
    let entries: Vec<_> = document.descendants().filter(|node| node.has_tag_name("entry")).collect();
    assert_eq!(entries.len(), 1);
    let title = entries[0].children().find(|node| node.has_tag_name("title")).and_then(|node| node.text());
    assert_eq!(title, Some("Hello & welcome"));
    assert_eq!(document.root_element().tag_name().namespace(), Some("http://www.w3.org/2005/Atom"));
    roxmltree::Document::parse(&site_text(&blog, "sitemap.xml").await)
        .expect("the sitemap is well-formed XML");
    assert!(site_text(&blog, "robots.txt").await.contains("Sitemap: "));
    blog.app.stop().await;
}

#[tokio::test]
async fn editing_a_post_rewrites_only_the_pages_that_show_it() {
    let blog = Blog::start().await;
    blog.publish_new("alpha", "2026-11-01T09:00:00Z", &["x"]).await;
    blog.publish_new("beta", "2026-11-02T09:00:00Z", &["y"]).await;
    blog.app.drain().await;
    let before = site_objects(&blog).await;

    blog.app.clock.advance(std::time::Duration::from_secs(3600));
    let (status, _, body) = blog
        .send(
            blog.app
                .http
                .put(blog.url("/v1/posts/alpha"))
                .bearer_auth(&blog.author)
                .header("if-match", "\"v1\"")
                .json(&json!({"title": "Alpha, revised", "body": "Body of alpha.", "tags": ["x"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    blog.app.drain().await;
    let after = site_objects(&blog).await;
    let changed: Vec<&String> =
        after.iter().filter(|(key, etag)| before.get(*key) != Some(etag)).map(|(key, _)| key).collect();
    assert_eq!(
        changed,
        ["feed.xml", "index.html", "posts/alpha/index.html", "sitemap.xml", "tags/x/index.html"]
    );
    assert!(site_text(&blog, "posts/alpha/index.html").await.contains("Alpha, revised"));

    let (status, _, _) =
        blog.send(blog.app.http.post(blog.url("/v1/posts/alpha/unpublish")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 200);
    blog.app.drain().await;
    let remaining = site_objects(&blog).await;
    assert!(!remaining.contains_key("posts/alpha/index.html"), "unpublishing removes the page");
    assert!(!remaining.contains_key("tags/x/index.html"), "and the tag page it alone was on");
    assert!(!site_text(&blog, "index.html").await.contains("Alpha"));
    assert!(site_text(&blog, "index.html").await.contains("Post beta"));
    blog.app.stop().await;
}

async fn get(blog: &Blog, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = blog.app.http.get(blog.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn the_edge_serves_pages_with_http_caching_semantics() {
    let blog = Blog::start().await;
    blog.publish_new("hello", "2026-11-01T09:00:00Z", &["intro"]).await;
    blog.app.drain().await;

    let first = get(&blog, "/", &[]).await;
    assert_eq!(first.status(), 200);
    let headers = first.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=60, stale-while-revalidate=600");
    assert_eq!(headers["x-cache"], "Miss from stratus-edge");
    assert_eq!(headers["vary"], "Accept-Encoding");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().expect("csp").contains("frame-ancestors 'none'"));
    assert!(!headers.contains_key("strict-transport-security"), "HSTS only over TLS");
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let last_modified = headers["last-modified"].to_str().expect("date").to_owned();
    let page = first.text().await.expect("body");
    assert!(page.contains("Post hello"));

    let second = get(&blog, "/", &[]).await;
    assert_eq!(second.headers()["x-cache"], "Hit from stratus-edge");
    for same in ["content-type", "cache-control", "etag", "last-modified", "vary", "content-security-policy"]
    {
        assert_eq!(second.headers()[same], headers[same], "a hit carries the miss's {same}");
    }
    assert_eq!(second.text().await.expect("body"), page);
    assert_eq!(get(&blog, "/", &[("if-none-match", &etag)]).await.status(), 304);
    assert_eq!(get(&blog, "/", &[("if-none-match", &format!("W/{etag}"))]).await.status(), 304);
    assert_eq!(get(&blog, "/", &[("if-modified-since", &last_modified)]).await.status(), 304);
    assert_eq!(get(&blog, "/", &[("if-none-match", "\"other\"")]).await.status(), 200);

    let head = blog.app.http.head(blog.url("/posts/hello/")).send().await.expect("head");
    assert_eq!(head.status(), 200);
    let length: usize = head.headers()["content-length"].to_str().expect("length").parse().expect("number");
    assert!(head.text().await.expect("body").is_empty());
    let full = get(&blog, "/posts/hello/", &[]).await.bytes().await.expect("body");
    assert_eq!(length, full.len());

    let range = get(&blog, "/posts/hello/", &[("range", "bytes=0-9")]).await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], format!("bytes 0-9/{}", full.len()));
    assert_eq!(range.bytes().await.expect("part"), full.slice(0..10));
    let suffix = get(&blog, "/posts/hello/", &[("range", "bytes=-5")]).await.bytes().await.expect("part");
    assert_eq!(suffix, full.slice(full.len() - 5..));
    let beyond = get(&blog, "/posts/hello/", &[("range", "bytes=999999-")]).await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], format!("bytes */{}", full.len()));

    for (accept, encoding) in [("br", "br"), ("gzip, deflate", "gzip"), ("identity", "")] {
        let response = get(&blog, "/posts/hello/", &[("accept-encoding", accept)]).await;
        let got = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().expect("encoding").to_owned())
            .unwrap_or_default();
        assert_eq!(got, encoding, "Accept-Encoding: {accept}");
        let bytes = response.bytes().await.expect("body");
        let decoded = match encoding {
            "gzip" => {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
                    .expect("gunzip");
                text
            }
            "br" => {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut brotli::Decompressor::new(&bytes[..], 4096), &mut text)
                    .expect("brotli");
                text
            }
            _ => bytes.to_vec(),
        };
        assert_eq!(decoded, full.to_vec(), "{accept}: the same page in every encoding");
    }

    let page = site_text(&blog, "index.html").await;
    let stylesheet = page
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("stylesheet link")
        // The template escapes '/' in attributes, as OWASP advises; browsers decode it.
        .replace("&#x2f;", "/");
    let css = get(&blog, &stylesheet, &[]).await;
    assert_eq!(css.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    blog.app.stop().await;
}

#[tokio::test]
async fn republishing_invalidates_the_edge_cache_precisely() {
    let blog = Blog::start().await;
    blog.publish_new("hello", "2026-11-01T09:00:00Z", &[]).await;
    blog.publish_new("other", "2026-11-02T09:00:00Z", &[]).await;
    blog.app.drain().await;
    for path in ["/posts/hello/", "/posts/other/"] {
        get(&blog, path, &[]).await;
        assert_eq!(get(&blog, path, &[]).await.headers()["x-cache"], "Hit from stratus-edge");
    }
    blog.app.clock.advance(std::time::Duration::from_secs(60));
    let (status, _, _) = blog
        .send(
            blog.app
                .http
                .put(blog.url("/v1/posts/hello"))
                .bearer_auth(&blog.author)
                .header("if-match", "\"v1\"")
                .json(&json!({"title": "Hello again", "body": "New words."})),
        )
        .await;
    assert_eq!(status, 200);
    blog.app.drain().await;
    let fresh = get(&blog, "/posts/hello/", &[]).await;
    assert_eq!(fresh.headers()["x-cache"], "Miss from stratus-edge", "the rewritten page is fetched again");
    assert!(fresh.text().await.expect("body").contains("Hello again"));
    assert_eq!(
        get(&blog, "/posts/other/", &[]).await.headers()["x-cache"],
        "Hit from stratus-edge",
        "other pages stay cached"
    );
    blog.app.stop().await;
}

#[tokio::test]
async fn the_edge_answers_unknown_and_hostile_paths_safely() {
    let blog = Blog::start_with(|config| {
        config.edge.redirects.insert("/old-feed".into(), "/feed.xml".into());
    })
    .await;
    blog.publish_new("hello", "2026-11-01T09:00:00Z", &[]).await;
    blog.app.drain().await;
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let missing = client.get(blog.url("/no/such/page/")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.expect("body").contains("Page not found"), "the site's own 404 page");
    for hostile in ["/..%2f..%2fetc/passwd", "/posts/%2e%2e/%2e%2e/stratus.db", "/%00"] {
        assert_eq!(client.get(blog.url(hostile)).send().await.expect("request").status(), 404, "{hostile}");
    }
    let slashless = client.get(blog.url("/posts/hello")).send().await.expect("request");
    assert_eq!(
        (slashless.status().as_u16(), slashless.headers()["location"].to_str().expect("location")),
        (301, "/posts/hello/")
    );
    let moved = client.get(blog.url("/old-feed")).send().await.expect("request");
    assert_eq!(
        (moved.status().as_u16(), moved.headers()["location"].to_str().expect("location")),
        (301, "/feed.xml")
    );
    let post = client.post(blog.url("/index.html")).send().await.expect("request");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(post.headers()["content-type"], "text/html; charset=utf-8", "browsers get a page");
    assert!(post.text().await.expect("body").contains("<h1>Method Not Allowed</h1>"));
    for _ in 0..2 {
        assert_eq!(client.get(blog.url("/")).send().await.expect("request").status(), 200);
    }
    let (status, _) = blog.app.cognito("ListGroups", json!({})).await;
    assert_eq!(status, 400, "POST / still reaches the identity endpoint with the home page cached");
    blog.app.stop().await;
}

#[tokio::test]
async fn api_reads_are_cached_per_caller_until_the_data_changes() {
    let blog = Blog::start().await;
    blog.publish_new("cached", "2026-11-01T09:00:00Z", &[]).await;
    let first = get(&blog, "/v1/posts/cached", &[]).await;
    assert_eq!(first.headers()["x-cache"], "Miss from stratus-gateway");
    let second = get(&blog, "/v1/posts/cached", &[]).await;
    assert_eq!(second.headers()["x-cache"], "Hit from stratus-gateway");
    assert_eq!(second.headers()["etag"], "\"v1\"");
    // The author's view (drafts included) is theirs: the anonymous entry is not served to them.
    let author = || blog.app.http.get(blog.url("/v1/posts/cached")).bearer_auth(&blog.author).send();
    assert_eq!(author().await.expect("get").headers()["x-cache"], "Miss from stratus-gateway");
    assert_eq!(author().await.expect("get").headers()["x-cache"], "Hit from stratus-gateway");

    let (status, _, _) = blog
        .send(
            blog.app
                .http
                .put(blog.url("/v1/posts/cached"))
                .bearer_auth(&blog.author)
                .header("if-match", "\"v1\"")
                .json(&json!({"title": "Changed", "body": "New."})),
        )
        .await;
    assert_eq!(status, 200);
    let fresh = get(&blog, "/v1/posts/cached", &[]).await;
    assert_eq!(fresh.headers()["x-cache"], "Miss from stratus-gateway", "a write clears the cache");
    assert_eq!(fresh.json::<Value>().await.expect("json")["title"], "Changed");

    // A change made outside the API (here: the store directly, as the CLI does) clears it too.
    get(&blog, "/v1/posts/cached", &[]).await;
    let table = blog.app.platform.table(stratus::apps::blog::store::table_spec()).expect("table");
    let store = stratus::apps::blog::store::PostStore::new(
        std::sync::Arc::new(table),
        std::sync::Arc::new(stratus::infra::clock::SystemClock),
    );
    let slug = stratus::apps::blog::Slug::parse("cached").expect("slug");
    store.replace(&slug, None, |post| post.title = "Changed elsewhere".into()).await.expect("replace");
    blog.app.drain().await;
    let after = get(&blog, "/v1/posts/cached", &[]).await;
    assert_eq!(after.json::<Value>().await.expect("json")["title"], "Changed elsewhere");
    blog.app.stop().await;
}

#[tokio::test]
async fn a_fresh_install_shows_a_site_with_its_first_steps() {
    let app = TestApp::spawn().await;
    let home = app.http.get(format!("{}/", app.base)).send().await.expect("request");
    assert_eq!(home.status(), 200);
    let page = home.text().await.expect("page");
    assert!(page.contains("Stratus Blog") && page.contains("No posts yet."), "{page}");
    assert!(page.contains("stratus posts publish"), "the index says how to publish: {page}");
    for path in ["/feed.xml", "/sitemap.xml", "/robots.txt"] {
        let response = app.http.get(format!("{}{path}", app.base)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
    let missing = app.http.get(format!("{}/no-such-page/", app.base)).send().await.expect("request");
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.expect("page").contains("Stratus Blog"), "the theme's 404 page");
}
