//! Photos: uploads through HTTP, the `thumbnail` function, and the photo's state.

use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use serde_json::Value;

use crate::blog::Blog;

/// A 1600×1200 JPEG stored sideways: EXIF orientation 6 (turn 90° clockwise to view).
fn sideways_jpeg() -> Vec<u8> {
    let pixels: Vec<u8> = (0..1200u32)
        .flat_map(|y| {
            (0..1600u32).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        })
        .collect();
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(b"GPS: 48.8584 N, 2.2945 E");
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.add_app_segment(1, exif).expect("exif");
    encoder.encode(&pixels, 1600, 1200, jpeg_encoder::ColorType::Rgb).expect("encode");
    bytes
}

async fn upload(blog: &Blog, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("image/jpeg")
        .expect("mime");
    let form = reqwest::multipart::Form::new().part("file", part);
    let (status, _, body) =
        blog.send(blog.app.http.post(blog.url("/v1/photos")).bearer_auth(token).multipart(form)).await;
    (status, body)
}

/// An anonymous GET of `path`, as a browser or CDN would send it.
async fn fetch(blog: &Blog, path: &str) -> reqwest::Response {
    blog.app.http.get(blog.url(path)).send().await.expect("request")
}

async fn photo(blog: &Blog, id: &str) -> Value {
    let (status, _, body) = blog.send(blog.app.http.get(blog.url(&format!("/v1/photos/{id}")))).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn keys_under(blog: &Blog, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt as _;
    let media = blog.app.platform.buckets.bucket("media").expect("bucket");
    let listed: Vec<_> = media.list(Some(&prefix.into())).try_collect().await.expect("list");
    let mut keys: Vec<String> = listed.into_iter().map(|meta| meta.location.to_string()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn an_uploaded_photo_gets_upright_thumbnails_once() {
    let blog = Blog::start().await;
    let original = sideways_jpeg();
    let (status, body) = upload(&blog, &blog.author, "holiday.jpg", original.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    blog.app.drain().await;

    let ready = photo(&blog, &id).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!((ready["width"].as_u64(), ready["height"].as_u64()), (Some(1200), Some(1600)), "upright");
    let sizes: Vec<(String, u64, u64)> = ready["thumbnails"]
        .as_array()
        .expect("thumbnails")
        .iter()
        .map(|t| {
            (
                t["format"].as_str().expect("format").to_owned(),
                t["width"].as_u64().expect("w"),
                t["height"].as_u64().expect("h"),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("jpeg".into(), 192, 256),
            ("webp".into(), 192, 256),
            ("jpeg".into(), 768, 1024),
            ("webp".into(), 768, 1024)
        ]
    );
    let thumbnails = keys_under(&blog, &format!("thumbnails/photos/{id}")).await;
    assert_eq!(thumbnails.len(), 4, "{thumbnails:?}");
    let media = blog.app.platform.buckets.bucket("media").expect("bucket");
    for key in &thumbnails {
        let bytes = media.get(&key.as_str().into()).await.expect("get").bytes().await.expect("bytes");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("Exif") && !text.contains("GPS"), "{key}: no metadata");
    }

    // The edge serves the original and the thumbnails, for a year, from memory once hot.
    for url in
        [ready["original"].as_str().expect("original"), ready["thumbnails"][2]["url"].as_str().expect("url")]
    {
        let first = fetch(&blog, url).await;
        assert_eq!(first.status(), 200, "{url}");
        assert_eq!(first.headers()["content-type"], "image/jpeg");
        assert_eq!(first.headers()["cache-control"], "public, max-age=31536000, immutable");
        let second = fetch(&blog, url).await;
        assert_eq!(second.headers()["x-cache"], "Hit from stratus-edge");
        assert!(!second.bytes().await.expect("bytes").is_empty());
    }
    assert_eq!(fetch(&blog, "/media/photos/nothing.jpg").await.status(), 404);

    // Variants on request: an offered width, made once, then from memory; others refused.
    let original_url = ready["original"].as_str().expect("original").to_owned();
    let variant = fetch(&blog, &format!("{original_url}?w=640&format=webp")).await;
    assert_eq!(variant.status(), 200);
    assert_eq!(variant.headers()["content-type"], "image/webp");
    let picture = image::load_from_memory(&variant.bytes().await.expect("bytes")).expect("webp");
    assert_eq!((picture.width(), picture.height()), (480, 640), "upright, 640 on the long edge");
    let again = fetch(&blog, &format!("{original_url}?w=640&format=webp")).await;
    assert_eq!(again.headers()["x-cache"], "Hit from stratus-edge");
    let made = keys_under(&blog, "variants").await;
    assert_eq!(made.len(), 1, "made once: {made:?}");
    for refused in ["?w=641", "?w=640&format=gif", "?format=webp"] {
        let response = fetch(&blog, &format!("{original_url}{refused}")).await;
        assert_eq!(response.status(), 400, "{refused}");
    }
    let missing = fetch(&blog, "/media/photos/none.jpg?w=640").await;
    assert_eq!(missing.status(), 404);

    // The same original written again (an event delivered twice): the same set, rewritten.
    let key = ready["original"].as_str().expect("original").trim_start_matches("/media/").to_owned();
    assert!(key.starts_with("photos/") && key.ends_with(".jpg"), "{key}");
    media.put(&key.as_str().into(), PutPayload::from(original)).await.expect("put");
    blog.app.drain().await;
    assert_eq!(keys_under(&blog, &format!("thumbnails/photos/{id}")).await, thumbnails);
    assert_eq!(photo(&blog, &id).await, ready);
    blog.app.stop().await;
}

#[tokio::test]
async fn bad_photos_end_failed_with_a_reason_and_uploads_are_guarded() {
    let blog = Blog::start_with(|config| config.media.max_upload_bytes = 256 * 1024).await;
    let jpeg = sideways_jpeg();
    let mut bomb = Vec::new();
    {
        use image::ImageEncoder as _;
        image::codecs::png::PngEncoder::new(&mut bomb)
            .write_image(&[0u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
            .expect("png");
    }
    bomb[16..24].copy_from_slice(&[0, 0, 0xC3, 0x50, 0, 0, 0xC3, 0x50]);
    let mut crc = flate2::Crc::new();
    crc.update(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let cases = [
        ("bomb.png", bomb, "more than 100000000 pixels"),
        ("cut.jpg", jpeg[..jpeg.len() / 3].to_vec(), "truncated or corrupt"),
        ("page.jpg", b"<!doctype html><title>not a photo</title>".to_vec(), "not a JPEG, PNG, WebP or GIF"),
        ("empty.jpg", Vec::new(), "empty"),
    ];
    let mut ids = Vec::new();
    for (name, bytes, _) in &cases {
        let (status, body) = upload(&blog, &blog.author, name, bytes.clone()).await;
        assert_eq!(status, 202, "{name}: {body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    blog.app.drain().await;
    for ((name, _, reason), id) in cases.iter().zip(&ids) {
        let failed = photo(&blog, id).await;
        assert_eq!(failed["state"], "failed", "{name}: {failed}");
        assert!(failed["reason"].as_str().expect("reason").contains(reason), "{name}: {failed}");
        assert!(keys_under(&blog, &format!("thumbnails/photos/{id}")).await.is_empty());
    }
    assert!(
        blog.app.platform.stream.dead_letters(Some("thumbnail")).expect("letters").is_empty(),
        "no retries"
    );
    let impostor = photo(&blog, &ids[2]).await;
    let stored = impostor["original"].as_str().expect("original");
    assert!(stored.ends_with(".bin"), "kept, named by its content: {stored}");
    let served = fetch(&blog, stored).await;
    assert_eq!(served.status(), 404, "what is no image is never served from the site's origin");

    let before = keys_under(&blog, "photos").await;
    let (status, body) = upload(&blog, &blog.author, "huge.jpg", vec![0xFF; 300 * 1024]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(keys_under(&blog, "photos").await, before, "nothing of a refused upload remains");
    assert_eq!(upload(&blog, &blog.reader, "x.jpg", jpeg.clone()).await.0, 403);
    let anonymous = blog.app.http.post(blog.url("/v1/photos")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let (status, _, _) = blog.send(blog.app.http.get(blog.url("/v1/photos/../../etc"))).await;
    assert_eq!(status, 404);
    blog.app.stop().await;
}

#[tokio::test]
async fn the_cli_uploads_photos_and_reports_each_final_state() {
    let dir = tempfile::TempDir::new().expect("dir");
    let (good, bad) = (dir.path().join("good.jpg"), dir.path().join("bad.jpg"));
    std::fs::write(&good, sideways_jpeg()).expect("write");
    std::fs::write(&bad, b"<html>not a photo</html>").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["photos", "upload"])
        .args([&good, &bad])
        .args(["--stage", "test", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STRATUS_LOG__FILTER", "warn")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "a refused photo is a failure: {stdout} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{}  ", good.display()))
            && lines[0].ends_with("ready 1200x1600, 4 thumbnails"),
        "{stdout}"
    );
    assert!(lines[1].contains(" failed: not a JPEG, PNG, WebP or GIF image"), "{stdout}");
    assert_eq!(stderr.matches("1 of 2 photos were not made ready").count(), 1, "said once: {stderr}");
}

#[tokio::test]
async fn a_presigned_url_allows_one_direct_upload_until_it_expires() {
    let blog = Blog::start().await;
    let presign =
        |token: &str| blog.app.http.post(blog.url("/v1/photos/uploads")).bearer_auth(token.to_owned());
    assert_eq!(blog.send(presign(&blog.reader)).await.0, 403);
    let (status, _, link) = blog.send(presign(&blog.author)).await;
    assert_eq!(status, 201, "{link}");
    let url = link["upload_url"].as_str().expect("url").to_owned();
    let id = link["id"].as_str().expect("id").to_owned();
    assert!(url.contains(&format!("/v1/photos/uploads/{id}?token=")), "{url}");

    let put = |url: String| blog.app.http.put(url).body(sideways_jpeg());
    let mut tampered = url.clone();
    tampered.replace_range(tampered.len() - 2.., "xx");
    assert_eq!(blog.send(put(tampered)).await.0, 403);
    let other_id = url.replace(&id, &"0".repeat(32));
    assert_eq!(blog.send(put(other_id)).await.0, 403, "the token names one photo");

    let (status, _, body) = blog.send(put(url.clone())).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(blog.send(put(url)).await.0, 409, "one upload per URL");
    blog.app.drain().await;
    let ready = photo(&blog, &id).await;
    assert_eq!(ready["state"], "ready", "{ready}");

    let (_, _, late) = blog.send(presign(&blog.author)).await;
    blog.app.clock.advance(std::time::Duration::from_secs(16 * 60));
    let (status, _, body) = blog.send(put(late["upload_url"].as_str().expect("url").to_owned())).await;
    assert_eq!(status, 403, "expired: {body}");
    blog.app.stop().await;
}

#[tokio::test]
async fn a_photo_whose_thumbnails_cannot_be_stored_ends_failed_and_a_redrive_makes_it_ready() {
    let blog = Blog::start().await;
    // A file where the `thumbnails/` folder must go: every thumbnail write fails, as on a full
    // or broken disk, while the original is stored.
    let blocker = blog.app.stage_dir().join("buckets/media/thumbnails");
    std::fs::write(&blocker, b"in the way").expect("blocker");
    let (status, body) = upload(&blog, &blog.author, "holiday.jpg", sideways_jpeg()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    blog.app.drain().await;

    let failed = photo(&blog, &id).await;
    assert_eq!(failed["state"], "failed", "not left pending behind a dead letter: {failed}");
    let reason = failed["reason"].as_str().expect("reason");
    assert_eq!(reason, "thumbnails could not be stored: cannot read or write the media bucket");
    let letters = blog.app.platform.stream.dead_letters(Some("thumbnail")).expect("letters");
    assert_eq!(letters.len(), 1, "retried, then kept for a redrive");
    assert_eq!(letters[0].attempts, 3);

    std::fs::remove_file(&blocker).expect("remove blocker");
    assert_eq!(blog.app.platform.stream.redrive("thumbnail", None).expect("redrive"), 1);
    blog.app.drain().await;
    let ready = photo(&blog, &id).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert!(ready.get("reason").is_none_or(Value::is_null), "{ready}");
    assert_eq!(keys_under(&blog, &format!("thumbnails/photos/{id}")).await.len(), 4);
    blog.app.stop().await;
}

#[test]
fn bombs_are_refused_while_the_process_stays_within_its_memory_bound() {
    let dir = tempfile::TempDir::new().expect("dir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    // Under the pixel limit, but 30 MP of RGBA: 120 MB decoded and 90 MB more as RGB, in a
    // 120 kB file.
    let mut wide = Vec::new();
    {
        use image::ImageEncoder as _;
        image::codecs::png::PngEncoder::new(&mut wide)
            .write_image(&vec![0u8; 6000 * 5000 * 4], 6000, 5000, image::ExtendedColorType::Rgba8)
            .expect("png");
    }
    // The last photo comes through a FIFO: the process blocks opening it after the others, and
    // is measured then, alive, through /proc.
    let last = dir.path().join("last.jpg");
    nix::unistd::mkfifo(&last, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let files = [
        write("wide.png", &wide),
        write("cut.jpg", &sideways_jpeg()[..100_000]),
        write("page.jpg", b"<!doctype html><title>not a photo</title>"),
        write("empty.jpg", b""),
        last.clone(),
    ];
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["photos", "upload"])
        .args(&files)
        .args(["--stage", "test", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STRATUS_LOG__FILTER", "warn")
        .env("STRATUS_MEDIA__MAX_DECODE_BYTES", (64 * 1024 * 1024).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let (opened, reached) = std::sync::mpsc::channel();
    let (go, proceed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Opening a FIFO for writing returns once the reader has opened it.
        let mut fifo = std::fs::OpenOptions::new().write(true).open(&last).expect("open fifo");
        opened.send(()).expect("report");
        if proceed.recv().is_ok() {
            std::io::Write::write_all(&mut fifo, &sideways_jpeg()).expect("feed");
        }
    });
    reached.recv_timeout(std::time::Duration::from_secs(120)).expect("the last photo is opened");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    go.send(()).expect("go");
    let output = child.wait_with_output().expect("wait");
    assert!(peak_kb < 100 * 1024, "peak resident memory after the bombs: {peak_kb} kB");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(
        lines[0].ends_with(
            "failed: decoding the image needs 210000000 bytes of memory, more than the 67108864 allowed"
        ),
        "{stdout}"
    );
    assert!(
        lines[1].contains(" failed: the image is truncated or corrupt (Premature end of JPEG file)"),
        "{stdout}"
    );
    assert!(lines[2].contains(" failed: not a JPEG, PNG, WebP or GIF image"), "{stdout}");
    assert!(lines[3].contains(" failed: the file is empty"), "{stdout}");
    assert!(lines[4].ends_with("ready 1200x1600, 4 thumbnails"), "{stdout}");
}

#[tokio::test]
async fn giving_up_marks_a_pending_photo_failed_but_never_undoes_a_ready_one() {
    use stratus::apps::media::photos::{PhotoState, PhotoStore, table_spec};
    let test = crate::support::TestPlatform::new();
    let table = test.platform.table(table_spec()).expect("table");
    let photos = PhotoStore::new(std::sync::Arc::new(table), std::sync::Arc::new(test.clock.clone()));
    for id in ["stuck", "done"] {
        photos.create(id, &format!("photos/{id}.jpg"), "writer").await.expect("create");
    }
    photos.mark_ready("done", 1600, 1200, &[]).await.expect("ready");

    assert!(photos.give_up("stuck", "thumbnails could not be stored").await.expect("give up"));
    assert!(!photos.give_up("done", "thumbnails could not be stored").await.expect("give up"));
    let stuck = photos.get("stuck").await.expect("get").expect("photo");
    assert_eq!(
        (stuck.state, stuck.reason.as_deref()),
        (PhotoState::Failed, Some("thumbnails could not be stored"))
    );
    let done = photos.get("done").await.expect("get").expect("photo");
    assert_eq!((done.state, done.width), (PhotoState::Ready, Some(1600)));
}

#[test]
fn the_thumbnail_command_writes_the_format_its_output_is_named_for() {
    let dir = tempfile::TempDir::new().expect("dir");
    let (photo, page) = (dir.path().join("sideways.jpg"), dir.path().join("page.jpg"));
    std::fs::write(&photo, sideways_jpeg()).expect("write");
    std::fs::write(&page, b"<!doctype html><title>not a photo</title>").expect("write");
    let thumbnail = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("thumbnail")
            .args(args)
            .output()
            .expect("run");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let out = |name: &str| dir.path().join(name).into_os_string();

    let (code, stdout, stderr) =
        thumbnail(&[photo.as_os_str(), &out("small.webp"), "--width".as_ref(), "256".as_ref()]);
    assert_eq!(code, Some(0), "{stderr}");
    let named = dir.path().join("small.webp");
    assert!(stdout.starts_with(&format!("{} 192x256 (", named.display())), "{stdout}");
    let written = std::fs::read(out("small.webp")).expect("written");
    assert_eq!(image::guess_format(&written).expect("format"), image::ImageFormat::WebP);
    let picture = image::load_from_memory(&written).expect("decode");
    assert_eq!((picture.width(), picture.height()), (192, 256), "upright: EXIF orientation 6 applied");

    let (code, _, _) = thumbnail(&[
        photo.as_os_str(),
        &out("named.png"),
        "--width".as_ref(),
        "64".as_ref(),
        "--format".as_ref(),
        "jpeg".as_ref(),
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        image::guess_format(&std::fs::read(out("named.png")).expect("written")).expect("format"),
        image::ImageFormat::Jpeg
    );

    let (code, _, stderr) =
        thumbnail(&[photo.as_os_str(), &out("unknown.png"), "--width".as_ref(), "64".as_ref()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("name it .jpg or .webp, or pass --format"), "{stderr}");
    let (code, _, stderr) =
        thumbnail(&[photo.as_os_str(), &out("zero.jpg"), "--width".as_ref(), "0".as_ref()]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) =
        thumbnail(&[page.as_os_str(), &out("page-small.jpg"), "--width".as_ref(), "64".as_ref()]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim_end(), format!("error: {}: not a JPEG, PNG, WebP or GIF image", page.display()));
    for refused in ["unknown.png", "zero.jpg", "page-small.jpg"] {
        assert!(!dir.path().join(refused).exists(), "nothing written for a refused {refused}");
    }
}

#[tokio::test]
async fn a_stored_item_that_does_not_read_back_is_an_error_never_a_default() {
    use stratus::ports::table::Table as _;
    let blog = Blog::start().await;
    let photos = blog.app.platform.table(stratus::apps::media::photos::table_spec()).expect("table");
    let id = "0123456789abcdef0123456789abcdef";
    let stored = stratus::item! {
        "id" => id, "key" => format!("photos/{id}.jpg"), "state" => "exploded", "bytes" => 10,
        "uploaded_by" => "writer", "uploaded_at" => "2026-12-02T00:00:00Z",
    };
    photos.put(stored, None).await.expect("put");
    let response = fetch(&blog, &format!("/v1/photos/{id}")).await;
    assert_eq!(response.status(), 500, "an unknown state is not read as `pending`");
    let body: Value = response.json().await.expect("problem");
    assert!(!body.to_string().contains("exploded"), "the cause is logged, not sent: {body}");

    let posts = blog.app.platform.table(stratus::apps::blog::store::table_spec()).expect("table");
    let untitled = stratus::item! {
        "pk" => "POST#untitled", "sk" => "POST", "slug" => "untitled", "body" => "", "summary" => "",
        "status" => "draft", "version" => 1, "author" => "writer", "created_at" => "x", "updated_at" => "x",
    };
    posts.put(untitled, None).await.expect("put");
    let (status, _, _) =
        blog.send(blog.app.http.get(blog.url("/v1/posts/untitled")).bearer_auth(&blog.author)).await;
    assert_eq!(status, 500, "a post without its title is corrupt, not untitled");
    blog.app.stop().await;
}
