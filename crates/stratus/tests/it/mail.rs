use std::sync::Arc;

use stratus::infra::clock::SystemClock;
use stratus::infra::sqlite::Database;
use stratus::ports::mail::{Deduplicated, Email, MailError, Mailer, OutboxMailer, SmtpMailer, parse_sender};
use stratus::ports::mail::{SmtpConfig, SmtpTls};

use crate::support::{SinkTls, SmtpSink, TestPlatform};

fn welcome(key: &str, to: &str) -> Email {
    Email {
        idempotency_key: key.to_owned(),
        to: to.to_owned(),
        subject: "Welcome to the blog".to_owned(),
        text: "Thanks for subscribing.".to_owned(),
        html: Some("<p>Thanks for subscribing.</p>".to_owned()),
        headers: vec![(
            "List-Unsubscribe".to_owned(),
            "<https://blog.test/unsubscribe?token=abc>".to_owned(),
        )],
    }
}

#[tokio::test]
async fn the_same_idempotency_key_sends_one_message() {
    let test = TestPlatform::new();
    let first = test.platform.mailer.send(&welcome("welcome/ada", "ada@example.com")).await.expect("send");
    let again =
        test.platform.mailer.send(&welcome("welcome/ada", "ada@example.com")).await.expect("send again");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.message_id, again.message_id);
    test.platform.mailer.send(&welcome("welcome/bob", "bob@example.com")).await.expect("send");

    let outbox = test.platform.outbox().expect("outbox");
    let entries = outbox.list().expect("list");
    assert_eq!(entries.len(), 2);
    let ada = entries.iter().find(|entry| entry.to == "ada@example.com").expect("ada's message");
    assert_eq!(ada.subject, "Welcome to the blog");
    let raw = outbox.read(&ada.id[..8]).expect("read by prefix");
    assert!(raw.contains(&format!("Message-ID: {}", first.message_id)), "{raw}");
    assert!(raw.contains("List-Unsubscribe: <https://blog.test/unsubscribe?token=abc>"));
    assert!(raw.contains("multipart/alternative"));
    assert!(raw.contains("text/html"));
    assert!(matches!(outbox.read("ffff"), Err(MailError::UnknownMessage { .. })));
}

#[tokio::test]
async fn invalid_messages_are_refused_and_nothing_is_sent() {
    let test = TestPlatform::new();
    let bad_recipient = test.platform.mailer.send(&welcome("k1", "not an address")).await;
    assert!(matches!(bad_recipient, Err(MailError::InvalidRecipient { .. })), "got {bad_recipient:?}");
    let mut injected = welcome("k2", "ada@example.com");
    injected.headers = vec![("X-Note".to_owned(), "a\r\nBcc: victim@example.com".to_owned())];
    let injection = test.platform.mailer.send(&injected).await;
    assert!(matches!(injection, Err(MailError::InvalidHeader { .. })), "got {injection:?}");
    let no_key = test.platform.mailer.send(&welcome("", "ada@example.com")).await;
    assert!(matches!(no_key, Err(MailError::MissingIdempotencyKey)), "got {no_key:?}");
    assert!(test.platform.outbox().expect("outbox").list().expect("list").is_empty());
}

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig { host: "127.0.0.1".into(), port, tls: SmtpTls::None, ..SmtpConfig::default() }
}

#[tokio::test]
async fn the_smtp_adapter_delivers_to_a_real_smtp_server() {
    let sink = SmtpSink::start(0).await;
    let mailer =
        SmtpMailer::new(&smtp_config(sink.port), parse_sender("Blog <blog@example.com>").expect("sender"))
            .expect("mailer");
    let sent = mailer.send(&welcome("welcome/ada", "ada@example.com")).await.expect("send");
    let received = sink.received.all();
    assert_eq!(received.len(), 1);
    assert!(received[0].contains(&format!("Message-ID: {}", sent.message_id)));
    assert!(received[0].contains("To: ada@example.com"));
    assert!(received[0].contains("From: Blog <blog@example.com>"));
}

#[tokio::test]
async fn an_smtp_failure_is_an_error_and_the_retry_delivers_once() {
    let sink = SmtpSink::start(1).await;
    let dir = tempfile::TempDir::new().expect("dir");
    let db = Arc::new(
        Database::open(&dir.path().join("mail.db"), stratus::infra::sqlite::Synchronous::Normal).expect("db"),
    );
    let smtp = SmtpMailer::new(&smtp_config(sink.port), parse_sender("blog@example.com").expect("sender"))
        .expect("mailer");
    let mailer = Deduplicated::new(smtp, db, Arc::new(SystemClock)).expect("dedup");
    let email = welcome("welcome/ada", "ada@example.com");
    let failed = mailer.send(&email).await;
    assert!(matches!(failed, Err(MailError::Smtp(_))), "got {failed:?}");
    let retried = mailer.send(&email).await.expect("retry");
    assert!(!retried.duplicate, "a failed send is not recorded as sent");
    let again = mailer.send(&email).await.expect("redelivery");
    assert!(again.duplicate);
    assert_eq!(sink.received.all().len(), 1);
    assert_eq!(*sink.refused.lock().expect("refusals"), 1);
}

#[tokio::test]
async fn the_outbox_writes_whole_files_only() {
    let dir = tempfile::TempDir::new().expect("dir");
    let outbox =
        OutboxMailer::new(dir.path(), parse_sender("blog@example.com").expect("sender")).expect("outbox");
    outbox.send(&welcome("k", "ada@example.com")).await.expect("send");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(".eml") && !names[0].starts_with('.'), "{names:?}");
}

#[tokio::test]
async fn the_smtp_adapter_encrypts_with_starttls_and_with_implicit_tls() {
    for (mode, tls) in [(SinkTls::Starttls, SmtpTls::Starttls), (SinkTls::Implicit, SmtpTls::Implicit)] {
        let sink = SmtpSink::start_with(0, mode).await;
        let config = SmtpConfig { tls, ca_file: Some(sink.ca_file.clone()), ..smtp_config(sink.port) };
        let mailer =
            SmtpMailer::new(&config, parse_sender("blog@example.com").expect("sender")).expect("mailer");
        mailer.send(&welcome("welcome/ada", "ada@example.com")).await.expect("send over TLS");
        assert_eq!(sink.received.all().len(), 1, "{mode:?}");
        assert_eq!(
            *sink.encrypted.lock().expect("encrypted"),
            1,
            "{mode:?}: the message travelled encrypted"
        );
    }
}

#[tokio::test]
async fn an_untrusted_relay_certificate_is_refused() {
    let sink = SmtpSink::start_with(0, SinkTls::Starttls).await;
    let config = SmtpConfig { tls: SmtpTls::Starttls, ..smtp_config(sink.port) };
    let mailer = SmtpMailer::new(&config, parse_sender("blog@example.com").expect("sender")).expect("mailer");
    let result = mailer.send(&welcome("welcome/ada", "ada@example.com")).await;
    assert!(matches!(result, Err(MailError::Smtp(_))), "got {result:?}");
    assert!(sink.received.all().is_empty());
}
