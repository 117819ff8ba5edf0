//! The Lambda `bootstrap` of every Stratus function; `_HANDLER` says which one.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs to CloudWatch, without ANSI colours or times (Lambda stamps each line).
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATUS_AWS_LOG").unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .with_ansi(false)
        .init();
    stratus_aws::lambda::run().await
}
