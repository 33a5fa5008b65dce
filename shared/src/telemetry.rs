//! Structured JSON logs via `tracing`, as Lambda's JSON log format expects.

/// Installs the JSON subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's
/// `ApplicationLogLevel`) or `RUST_LOG`, default `info`.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_ascii_lowercase();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line.
        .with_ansi(false)
        .init();
}

/// Requests one invocation sent, from the clients' own counters: logged once per invocation
/// (the benchmarks add these up per expense).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub dynamodb_requests: u64,
    pub codat_calls: u64,
}

/// Runs one invocation's work and logs what it used, from `usage` read before and after.
pub async fn metered<T>(usage: impl Fn() -> Usage, work: impl std::future::Future<Output = T>) -> T {
    let before = usage();
    let output = work.await;
    usage().log_since(before);
    output
}

impl Usage {
    /// Logs what was used since `before`.
    pub fn log_since(self, before: Usage) {
        tracing::info!(
            function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            dynamodb_requests = self.dynamodb_requests - before.dynamodb_requests,
            codat_calls = self.codat_calls - before.codat_calls,
            "invocation usage"
        );
    }
}
