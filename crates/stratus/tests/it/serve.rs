//! The `stratus` binary, started as a user would start it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn stratus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stratus"))
}

/// The `/healthz` URL `serve` prints once it listens; the rest of its output is drained so the
/// server never writes to a closed pipe.
async fn healthz_url(stdout: std::process::ChildStdout) -> String {
    let (found, url) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(word) = line.split_whitespace().find(|word| word.ends_with("/healthz"))
                && let Some(found) = found.take()
            {
                let _ = found.send(word.to_owned());
            }
        }
    });
    url.await.expect("a /healthz URL on stdout")
}

/// `stratus serve` on a free port over `data_dir` (stage `test`), and its base URL.
async fn serve(data_dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = stratus()
        .args(["serve", "--listen", "127.0.0.1:0", "--stage", "test", "--data-dir"])
        .arg(data_dir)
        .env("STRATUS_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stratus serve");
    let base =
        healthz_url(child.stdout.take().expect("stdout")).await.trim_end_matches("/healthz").to_owned();
    (child, base)
}

/// Sends SIGTERM and waits (at most 10 s) for the exit status.
async fn stop(child: std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut child = child;
    let waited =
        tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || child.wait()))
            .await;
    waited.expect("stratus stops within 10 s of SIGTERM").expect("waiter").expect("exit status")
}

#[tokio::test]
async fn serve_answers_health_checks_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::TempDir::new().expect("dir");
    let (child, base) = serve(dir.path()).await;

    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");
    let ready = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert!(dir.path().join("test").join("stratus.db").exists(), "data lands in <data dir>/<stage>");

    let exit = stop(child).await;
    assert!(exit.success(), "clean exit after SIGTERM, got {exit:?}");
}

#[test]
fn a_bad_configuration_stops_start_up_with_a_message_naming_the_key() {
    let output = stratus()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("STRATUS_STREAM__BATCH_SIZE", "0")
        .output()
        .expect("run stratus");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stream.batch_size"), "{stderr}");
}

#[test]
fn the_cli_reports_unknown_consumers_and_empty_outboxes() {
    let dir = tempfile::TempDir::new().expect("dir");
    let output = stratus()
        .args(["stream", "dlq", "redrive", "--consumer", "nobody", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no stream consumer named `nobody`"));
    let output = stratus().args(["mail", "ls", "--data-dir"]).arg(dir.path()).output().expect("run");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "the outbox is empty");
}

#[tokio::test]
async fn operators_list_and_redrive_dead_letters_from_the_command_line() {
    use std::sync::Arc;

    use stratus::ports::table::{KeyAttribute, Table, TableSpec};
    use stratus::services::functions::{FunctionError, Host, StreamTrigger};

    let test = crate::support::TestPlatform::new();
    let table = test.platform.table(TableSpec::new("orders", KeyAttribute::string("id"))).expect("table");
    table.put(stratus::item! { "id" => "order-7" }, None).await.expect("put");
    let mut host = Host::new(Arc::clone(&test.platform.stream), &test.config.functions);
    host.on_table_change(
        "invoicing",
        table.stream_source(),
        StreamTrigger::new(&test.config.stream),
        |_, _| async {
            Err::<stratus::ports::events::BatchResponse, FunctionError>("the invoice service is down".into())
        },
    )
    .expect("register");
    host.start().expect("start");
    host.drain().await.expect("drain");
    host.shutdown().await;

    let cli = |args: &[&str]| {
        let output = stratus()
            .args(args)
            .arg("--stage")
            .arg("test")
            .arg("--data-dir")
            .arg(test.dir.path())
            .output()
            .expect("run");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = cli(&["stream", "dlq", "list", "--consumer", "invoicing"]);
    assert!(listed.contains("consumer=invoicing"), "{listed}");
    assert!(listed.contains("the invoice service is down"), "{listed}");
    assert!(listed.contains("order-7"), "{listed}");
    let status = cli(&["stream", "status"]);
    assert!(
        status.lines().any(|line| line.starts_with("invoicing") && line.contains("table/orders")),
        "{status}"
    );
    assert_eq!(
        cli(&["stream", "dlq", "redrive", "--consumer", "invoicing"]).trim(),
        "redrove 1 dead letter(s) to `invoicing`"
    );
    assert_eq!(cli(&["stream", "dlq", "list"]).trim(), "no dead letters");
    assert_eq!(
        test.platform.stream.consumers().expect("status")[0].pending,
        1,
        "the record waits for its consumer again"
    );
}

#[tokio::test]
async fn operators_manage_users_from_the_command_line_while_the_server_runs() {
    let dir = tempfile::TempDir::new().expect("dir");
    let (server, base) = serve(dir.path()).await;
    let cli = |args: &[&str]| {
        let output = stratus()
            .args(args)
            .args(["--stage", "test", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let created = cli(&[
        "users",
        "create",
        "author",
        "--email",
        "author@example.com",
        "--password",
        "Author-Pass-1",
        "--group",
        "authors",
    ]);
    assert!(created.contains("status:   CONFIRMED") && created.contains("groups:   authors"), "{created}");
    let temporary = cli(&["users", "create", "newbie", "--email", "newbie@example.com"]);
    assert!(
        temporary.contains("FORCE_CHANGE_PASSWORD") && temporary.contains("temporary password: "),
        "{temporary}"
    );
    let listed = cli(&["users", "list", "--filter", "email = \"author@example.com\""]);
    assert!(listed.lines().any(|line| line.starts_with("author ")), "{listed}");
    assert!(!listed.contains("newbie"), "{listed}");

    // The running server sees the user the CLI created.
    let shown = cli(&["users", "show", "author"]);
    assert!(shown.contains("email = author@example.com"), "{shown}");
    let readiness: serde_json::Value =
        reqwest::get(format!("{base}/readyz")).await.expect("readyz").json().await.expect("json");
    assert_eq!(readiness["status"], "ready");
    let pool_client = {
        let connection = rusqlite::Connection::open(dir.path().join("test").join("stratus.db")).expect("db");
        connection
            .query_row("SELECT client_id FROM identity_clients", [], |row| row.get::<_, String>(0))
            .expect("client")
    };
    let sign_in = || {
        reqwest::Client::new()
            .post(format!("{base}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSCognitoIdentityProviderService.InitiateAuth")
            .body(
                serde_json::json!({"ClientId": pool_client, "AuthFlow": "USER_PASSWORD_AUTH",
                                   "AuthParameters": {"USERNAME": "author", "PASSWORD": "Author-Pass-1"}})
                .to_string(),
            )
            .send()
    };
    assert_eq!(sign_in().await.expect("sign in").status(), 200);
    cli(&["users", "disable", "author"]);
    assert_eq!(sign_in().await.expect("sign in").status(), 400, "a disabled user cannot sign in");
    cli(&["users", "delete", "author"]);
    let missing = stratus()
        .args(["users", "show", "author", "--stage", "test", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("User does not exist."));

    assert!(stop(server).await.success());
}

#[tokio::test]
async fn authors_publish_markdown_files_from_the_command_line() {
    let dir = tempfile::TempDir::new().expect("dir");
    let posts = dir.path().join("posts");
    std::fs::create_dir_all(&posts).expect("posts dir");
    std::fs::write(
        posts.join("first-steps.md"),
        "---\ntitle: First steps\ntags: [intro]\ndate: 2026-11-01\n---\nHello from a file.\n",
    )
    .expect("write");
    std::fs::write(posts.join("later.md"), "---\ntitle: Later\ndraft: true\n---\nNot yet.\n").expect("write");
    std::fs::write(posts.join("broken.md"), "no front matter here\n").expect("write");
    let cli = |args: &[&str]| {
        stratus().args(args).args(["--stage", "test", "--data-dir"]).arg(dir.path()).output().expect("run")
    };

    let published = cli(&[
        "posts",
        "publish",
        &posts.join("first-steps.md").display().to_string(),
        &posts.join("broken.md").display().to_string(),
        &posts.join("later.md").display().to_string(),
    ]);
    assert!(!published.status.success(), "a broken file fails the command");
    let stdout = String::from_utf8_lossy(&published.stdout);
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(stdout.contains("first-steps  published  v1  First steps"), "{stdout}");
    assert!(stdout.contains("later  draft  v1  Later"), "{stdout}");
    assert!(
        stdout.contains("broken.md: the file must start with a `---` line") || stderr.contains("broken.md"),
        "{stdout}{stderr}"
    );

    let listed = cli(&["posts", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.lines().any(|line| line.starts_with("first-steps") && line.contains("published")),
        "{listed}"
    );
    assert!(listed.lines().any(|line| line.starts_with("later") && line.contains("draft")), "{listed}");
    let rebuilt = cli(&["site", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("rebuilt the site: 1 posts"));

    let (server, base) = serve(dir.path()).await;
    let page = reqwest::get(format!("{base}/posts/first-steps/")).await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("Hello from a file."));
    assert_eq!(
        reqwest::get(format!("{base}/posts/later/")).await.expect("page").status(),
        404,
        "drafts are not served"
    );
    assert!(stop(server).await.success());
}

#[tokio::test]
async fn the_cli_renders_pages_with_the_url_the_running_server_is_served_at() {
    let dir = tempfile::TempDir::new().expect("dir");
    let post = dir.path().join("hello.md");
    std::fs::write(&post, "---\ntitle: Hello\ndate: 2026-12-01\n---\nHi.\n").expect("write");
    let (server, base) = serve(dir.path()).await;
    assert!(!base.ends_with(":0"), "the server listens on a port of its own: {base}");

    // The server listens on port 0: only it knows its URL, and the CLI uses what it recorded.
    let published = stratus()
        .args(["posts", "publish"])
        .arg(&post)
        .args(["--stage", "test", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    let rebuilt = stratus()
        .args(["site", "rebuild", "--stage", "test", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let feed = std::fs::read_to_string(dir.path().join("test/buckets/site/feed.xml")).expect("feed");
    let host = base.trim_start_matches("http://");
    assert!(feed.contains(&format!("{host}/posts/hello/")), "{feed}");
    assert!(stop(server).await.success());
}
