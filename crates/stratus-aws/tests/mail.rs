//! Mail through SES (moto's server), sent once per key by the sent-log on DynamoDB.

mod support;

use std::sync::Arc;
use std::time::Duration;

use stratus::infra::clock::SystemClock;
use stratus::ports::mail::{Claimed, Email, MailError, Mailer, parse_sender, sent_log_spec};
use stratus_aws::dynamodb::{DynamoTable, WhenMissing};
use stratus_aws::mail::SesMailer;

/// How many messages moto's SES has accepted in this region (SES v1's `GetSendQuota`).
async fn sent_so_far() -> f64 {
    let response = support::unsigned("ses")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=GetSendQuota&Version=2010-12-01")
        .send()
        .await
        .expect("GetSendQuota");
    let body = response.text().await.expect("body");
    let count = body.split("<SentLast24Hours>").nth(1).and_then(|rest| rest.split('<').next());
    count.and_then(|count| count.parse().ok()).unwrap_or_else(|| panic!("no count in {body}"))
}

fn welcome(key: &str) -> Email {
    Email {
        idempotency_key: key.into(),
        to: "ada@example.com".into(),
        subject: "Welcome".into(),
        text: "Thanks for subscribing.".into(),
        html: Some("<p>Thanks for subscribing.</p>".into()),
        headers: vec![("List-Unsubscribe".into(), "<https://blog.example/unsubscribe>".into())],
    }
}

#[tokio::test]
async fn two_processes_handed_the_same_email_send_it_once_through_ses() {
    let config = support::emulator().await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    let sender = format!("{}@example.com", support::unique_name("blog"));
    let mailer = |log: Arc<DynamoTable>| {
        let transport = SesMailer::new(ses.clone(), parse_sender(&sender).expect("sender"), None);
        Claimed::new(transport, log, Arc::new(SystemClock), Duration::from_secs(60))
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let log = Arc::new(
        DynamoTable::open(dynamodb, sent_log_spec(), support::unique_name("mail-sent"), WhenMissing::Create)
            .await
            .expect("sent-log"),
    );
    let (first, second) = (mailer(Arc::clone(&log)), mailer(Arc::clone(&log)));

    // SES refuses an unverified sender: an error, and the key is free for the retry.
    let before = sent_so_far().await;
    let refused = first.send(&welcome("welcome/1")).await;
    assert!(matches!(refused, Err(MailError::Service(_))), "got {refused:?}");
    ses.create_email_identity().email_identity(&sender).send().await.expect("verify the sender");

    let email = welcome("welcome/1");
    let (a, b) = tokio::join!(first.send(&email), second.send(&email));
    let sent: Vec<_> = [a, b].into_iter().filter_map(Result::ok).filter(|sent| !sent.duplicate).collect();
    assert_eq!(sent.len(), 1, "exactly one of the two sends");
    assert_eq!(sent_so_far().await - before, 1.0, "SES accepted one message");
    let again = second.send(&welcome("welcome/1")).await.expect("a later send");
    assert!(again.duplicate);
    assert_eq!(again.message_id, sent[0].message_id);
    assert_eq!(sent_so_far().await - before, 1.0);

    let other = first.send(&welcome("welcome/2")).await.expect("another key");
    assert!(!other.duplicate);
    assert_eq!(sent_so_far().await - before, 2.0);
}
