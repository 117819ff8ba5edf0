use std::time::Duration;

use stratus::config::{Config, ConfigError, Overrides};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn sources_override_each_other_in_order() {
    let dir = tempfile::TempDir::new().expect("dir");
    let file = dir.path().join("stratus.toml");
    std::fs::write(
        &file,
        "stage = \"prod\"\n[stream]\nbatch_size = 10\nretention = \"12h\"\n[server]\nlisten = \"127.0.0.1:9000\"\n",
    )
    .expect("write");
    let defaults = Config::load(None, Vec::new(), &Overrides::default()).expect("defaults");
    assert_eq!((defaults.stage.as_str(), defaults.stream.batch_size), ("dev", 100));

    let from_file = Config::load(Some(&file), Vec::new(), &Overrides::default()).expect("file");
    assert_eq!(from_file.stage, "prod");
    assert_eq!(from_file.stream.retention, Duration::from_secs(12 * 3600));

    let with_env = Config::load(
        Some(&file),
        env(&[("STRATUS_STREAM__BATCH_SIZE", "25"), ("STRATUS_STAGE", "test"), ("OTHER_VAR", "x")]),
        &Overrides::default(),
    )
    .expect("env");
    assert_eq!((with_env.stage.as_str(), with_env.stream.batch_size), ("test", 25));

    let overrides = Overrides {
        stage: Some("qa".into()),
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Overrides::default()
    };
    let with_flags = Config::load(Some(&file), env(&[("STRATUS_STAGE", "test")]), &overrides).expect("flags");
    assert_eq!(with_flags.stage, "qa");
    assert_eq!(with_flags.server.listen.port(), 0);
    assert_eq!(with_flags.stage_dir(), std::path::Path::new("data").join("qa"));
    // An account id of digits keeps its leading zeros, though the environment reads it as a number.
    let account = Config::load(None, env(&[("STRATUS_IAM__ACCOUNT", "000000000000")]), &Overrides::default())
        .expect("account");
    assert_eq!(account.iam.account, "000000000000");
}

fn load_error(pairs: &[(&str, &str)]) -> String {
    chain(&Config::load(None, env(pairs), &Overrides::default()).expect_err("must be refused"))
}

/// An error with its causes, as the command line prints it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_bad_configuration_names_the_key_and_the_problem() {
    let cases = [
        (vec![("STRATUS_STREAM__BATCH_SIZE", "many")], "STRATUS_STREAM__BATCH_SIZE"),
        (vec![("STRATUS_STREAM__BATCH_SIZE", "0")], "stream.batch_size"),
        (vec![("STRATUS_STAGE", "Prod!")], "stage"),
        (vec![("STRATUS_STREAM__RETENTION", "forever")], "STRATUS_STREAM__RETENTION"),
        (vec![("STRATUS_MAIL__TRANSPORT", "smtp")], "mail.smtp.host"),
        (vec![("STRATUS_MAIL__FROM", "nobody")], "mail.from"),
        (vec![("STRATUS_SERVER__NO_SUCH_KEY", "1")], "no_such_key"),
        (vec![("STRATUS_SERVER__HEADER_READ_TIMEOUT", "0s")], "server.header_read_timeout"),
        (vec![("STRATUS_SERVER__BODY_MIN_RATE", "0")], "server.body_min_rate"),
        (vec![("STRATUS_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "0")], "server.max_connections_per_address"),
        (vec![("STRATUS_SERVER__METRICS", "everyone")], "STRATUS_SERVER__METRICS"),
        (vec![("STRATUS_FUNCTIONS__HTTP_CONCURRENCY", "0")], "functions.http_concurrency"),
        (vec![("STRATUS_IAM__ACCOUNT", "1234567890123")], "iam.account"),
        (vec![("STRATUS_IAM__ACCOUNT", "twelve")], "iam.account"),
        (
            vec![(
                "STRATUS_IDENTITY_POOLS__DEFAULT__AUTHENTICATED_ROLE",
                "arn:aws:iam::000000000000:role/Nobody",
            )],
            "identity_pools.<name>.authenticated_role",
        ),
        (vec![("STRATUS_IDENTITY_POOLS__DEFAULT__CREDENTIALS_VALIDITY", "1m")], "credentials_validity"),
        (vec![("STRATUS_FUNCTIONS__BACKGROUND_CONCURRENCY", "0")], "functions.background_concurrency"),
        (vec![("STRATUS_DATABASE__SYNCHRONOUS", "sometimes")], "STRATUS_DATABASE__SYNCHRONOUS"),
        (vec![("STRATUS_IDENTITY__POOLS__DEFAULT__ACCESS_TOKEN_VALIDITY", "2days")], "access_token_validity"),
        (vec![("STRATUS_IDENTITY__POOLS__DEFAULT__REFRESH_TOKEN_VALIDITY", "10m")], "refresh_token_validity"),
        (vec![("STRATUS_IDENTITY__POOLS__DEFAULT__ID", "pool1")], "identity.pools.<name>.id"),
        (
            vec![("STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY", "short")],
            "identity.operator_secret_access_key",
        ),
    ];
    for (pairs, key) in cases {
        let message = load_error(&pairs);
        assert!(message.contains(key), "{pairs:?}: `{message}` should name `{key}`");
    }
    let missing =
        Config::load(Some(std::path::Path::new("/no/such/stratus.toml")), Vec::new(), &Overrides::default());
    assert!(matches!(missing, Err(ConfigError::MissingFile { .. })), "got {missing:?}");
}

#[test]
fn secrets_are_never_printed() {
    let config = Config::load(
        None,
        env(&[
            ("STRATUS_MAIL__SMTP__USERNAME", "blog"),
            ("STRATUS_MAIL__SMTP__PASSWORD", "hunter2"),
            ("STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY", "operator-secret-0123456789"),
        ]),
        &Overrides::default(),
    )
    .expect("config");
    assert_eq!(
        config.mail.smtp.password.as_ref().map(stratus::infra::settings::Secret::expose),
        Some("hunter2")
    );
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2") && !printed.contains("operator-secret"), "{printed}");
}

#[test]
fn the_example_file_documents_the_defaults() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stratus.example.toml");
    let from_example =
        Config::load(Some(&example), Vec::new(), &Overrides::default()).expect("example loads");
    let defaults = Config::load(None, Vec::new(), &Overrides::default()).expect("defaults");
    assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
}

#[tokio::test]
async fn a_broken_policy_file_stops_start_up_naming_the_file_and_the_statement() {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let file = dir.path().join("todo-files.json");
    std::fs::write(
        &file,
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "Oops", "Effect": "Allow", "Action": "s3:PutObject"}]}"#,
    )
    .expect("policy file");
    let mut config = crate::support::test_config(dir.path());
    config
        .iam
        .roles
        .insert("Todo".into(), stratus::services::iam::RoleConfig { policy_files: vec![file.clone()] });
    let text = chain(&stratus::app::Application::build(config).await.expect_err("start-up must stop"));
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("statement 2 (Sid `Oops`)") && text.contains("needs Resource"), "{text}");
}
