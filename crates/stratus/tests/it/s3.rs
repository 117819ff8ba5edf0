//! The S3-compatible endpoint through its HTTP protocol, signed as an SDK signs: what boto3's
//! suite (`tests/clients/s3_flow.py`) cannot see from outside — the object events its writes
//! emit, and credentials expiring on the server's clock.

use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use stratus::infra::sigv4::{SignedRequest, amz_date, authorization_header};
use stratus::ports::events::ObjectEvent;
use stratus::services::cognito::credentials::Grant;

use crate::support::{OPERATOR_KEY, OPERATOR_SECRET, TestApp};

struct Signer<'a> {
    access_key_id: &'a str,
    secret: &'a str,
    session_token: Option<&'a str>,
}

const OPERATOR: Signer<'static> =
    Signer { access_key_id: OPERATOR_KEY, secret: OPERATOR_SECRET, session_token: None };

/// One S3 request signed with SigV4 (the payload's SHA-256 signed too, as the AWS CLI sends it).
async fn s3(
    app: &TestApp,
    signer: &Signer<'_>,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> (u16, String) {
    s3_at(app, None, signer, method, path, query, body).await
}

/// The same, addressed to the virtual host `<bucket>.localhost` when `bucket` is given.
async fn s3_at(
    app: &TestApp,
    bucket: Option<&str>,
    signer: &Signer<'_>,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> (u16, String) {
    let address = app.s3_base.trim_start_matches("http://").to_owned();
    let host = match bucket {
        Some(bucket) => format!("{bucket}.localhost:{}", address.rsplit_once(':').expect("port").1),
        None => address,
    };
    let mut headers = vec![
        ("host".to_owned(), host),
        ("x-amz-date".to_owned(), amz_date(SystemTime::now())),
        ("x-amz-content-sha256".to_owned(), hex::encode(Sha256::digest(body))),
    ];
    if let Some(token) = signer.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    let request = SignedRequest { method, path, query, headers: headers.clone(), body };
    let authorization =
        authorization_header(&request, signer.access_key_id, signer.secret, "us-east-1", "s3").expect("sign");
    let url = if query.is_empty() {
        format!("{}{path}", app.s3_base)
    } else {
        format!("{}{path}?{query}", app.s3_base)
    };
    let mut builder = app
        .http
        .request(method.parse().expect("method"), url)
        .header("authorization", authorization)
        .body(body.to_vec());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.expect("request");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

fn events(app: &TestApp) -> Vec<ObjectEvent> {
    app.platform
        .stream
        .read_after("test-reader", "bucket/user-files", 0, 100)
        .expect("read stream")
        .into_iter()
        .map(|record| serde_json::from_value(record.body).expect("object event"))
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect(start) + start.len();
    &text[from..from + text[from..].find(end).expect(end)]
}

#[tokio::test]
async fn writes_through_the_endpoint_emit_the_object_events_functions_receive() {
    let app = TestApp::spawn().await;
    let body = b"written through S3";
    assert_eq!(s3(&app, &OPERATOR, "PUT", "/user-files/docs/a.txt", "", body).await.0, 200);

    let (status, created) = s3(&app, &OPERATOR, "POST", "/user-files/docs/big.bin", "uploads=", b"").await;
    assert_eq!(status, 200, "{created}");
    let upload_id = between(&created, "<UploadId>", "</UploadId>").to_owned();
    let part = vec![7u8; 6 * 1024 * 1024];
    let (status, _) = s3(
        &app,
        &OPERATOR,
        "PUT",
        "/user-files/docs/big.bin",
        &format!("partNumber=1&uploadId={upload_id}"),
        &part,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = s3(
        &app,
        &OPERATOR,
        "PUT",
        "/user-files/docs/big.bin",
        &format!("partNumber=2&uploadId={upload_id}"),
        b"tail",
    )
    .await;
    assert_eq!(status, 200);
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"{}\"</ETag></Part>\
         <Part><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>",
        hex::encode(md5_of(&part))
    );
    let (status, completed) = s3(
        &app,
        &OPERATOR,
        "POST",
        "/user-files/docs/big.bin",
        &format!("uploadId={upload_id}"),
        complete.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{completed}");
    assert!(completed.contains("-2&quot;</ETag>") || completed.contains("-2\"</ETag>"), "{completed}");
    assert_eq!(s3(&app, &OPERATOR, "DELETE", "/user-files/docs/a.txt", "", b"").await.0, 204);

    let events = events(&app);
    let names: Vec<(&str, &str)> =
        events.iter().map(|event| (event.event_name.as_str(), event.s3.object.key.as_str())).collect();
    assert_eq!(
        names,
        [
            ("ObjectCreated:Put", "docs/a.txt"),
            ("ObjectCreated:CompleteMultipartUpload", "docs/big.bin"),
            ("ObjectRemoved:Delete", "docs/a.txt"),
        ]
    );
    assert_eq!(
        events[0].s3.object.e_tag.as_deref(),
        Some(hex::encode(md5_of(body)).as_str()),
        "S3's ETag, the MD5"
    );
    assert_eq!(events[1].s3.object.size, Some(part.len() as u64 + 4));
    // Nothing of the parts is left once the upload completed.
    let uploads = app.stage_dir().join("s3-uploads");
    assert_eq!(std::fs::read_dir(&uploads).expect("uploads").count(), 0, "{}", uploads.display());
}

#[tokio::test]
async fn a_bucket_named_by_the_host_is_the_same_bucket_as_by_the_path() {
    let app = TestApp::spawn().await;
    let (status, text) =
        s3_at(&app, Some("user-files"), &OPERATOR, "PUT", "/docs/virtual.txt", "", b"by host").await;
    assert_eq!(status, 200, "{text}");
    let (status, read) = s3(&app, &OPERATOR, "GET", "/user-files/docs/virtual.txt", "", b"").await;
    assert_eq!((status, read.as_str()), (200, "by host"));
    let (status, listed) =
        s3_at(&app, Some("user-files"), &OPERATOR, "GET", "/", "list-type=2&prefix=docs%2F", b"").await;
    assert!(status == 200 && listed.contains("<Key>docs/virtual.txt</Key>"), "{listed}");
}

#[tokio::test]
async fn temporary_credentials_expire_on_the_servers_clock() {
    let app = TestApp::spawn().await;
    let grant = Grant {
        identity_id: "us-east-1:00000000-0000-4000-8000-000000000001".into(),
        role_arn: "arn:aws:iam::000000000000:role/Cognito_DefaultAuthenticated".into(),
        subject: None,
        sign_in: None,
    };
    let issued =
        app.identity_pools.issue_credentials(grant.clone(), Duration::from_secs(3600)).await.expect("issue");
    let user = Signer {
        access_key_id: &issued.access_key_id,
        secret: &issued.secret_access_key,
        session_token: Some(&issued.session_token),
    };
    let own = format!("/user-files/{}/note.txt", grant.identity_id);
    assert_eq!(s3(&app, &user, "PUT", &own, "", b"mine").await.0, 200);
    let (status, denied) = s3(&app, &user, "PUT", "/user-files/someone-else/note.txt", "", b"theirs").await;
    assert_eq!((status, between(&denied, "<Code>", "</Code>")), (403, "AccessDenied"));

    app.clock.advance(Duration::from_secs(3601));
    let (status, expired) = s3(&app, &user, "GET", &own, "", b"").await;
    assert_eq!((status, between(&expired, "<Code>", "</Code>")), (400, "ExpiredToken"), "{expired}");
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use s3s::crypto::Checksum as _;
    s3s::crypto::Md5::checksum(data)
}

#[tokio::test]
async fn an_object_or_part_over_the_size_limit_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|config| config.s3.max_object_bytes = 1024 * 1024, |_| {}).await;
    let oversize = vec![1u8; 1024 * 1024 + 1];
    let (status, refused) = s3(&app, &OPERATOR, "PUT", "/user-files/big.bin", "", &oversize).await;
    assert_eq!((status, between(&refused, "<Code>", "</Code>")), (400, "EntityTooLarge"), "{refused}");
    assert_eq!(s3(&app, &OPERATOR, "HEAD", "/user-files/big.bin", "", b"").await.0, 404);

    let (_, created) = s3(&app, &OPERATOR, "POST", "/user-files/parts.bin", "uploads=", b"").await;
    let upload_id = between(&created, "<UploadId>", "</UploadId>").to_owned();
    let part = format!("partNumber=1&uploadId={upload_id}");
    let (status, refused) = s3(&app, &OPERATOR, "PUT", "/user-files/parts.bin", &part, &oversize).await;
    assert_eq!((status, between(&refused, "<Code>", "</Code>")), (400, "EntityTooLarge"), "{refused}");
    let (_, parts) =
        s3(&app, &OPERATOR, "GET", "/user-files/parts.bin", &format!("uploadId={upload_id}"), b"").await;
    assert!(!parts.contains("<Part>"), "no part was recorded: {parts}");
    assert!(events(&app).is_empty(), "nothing was written");
}
