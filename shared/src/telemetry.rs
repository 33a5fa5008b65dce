//! Structured JSON logs via `tracing`, as Lambda's JSON log format expects.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The crates of this repository: the shared crate and the five functions.
const OURS: [&str; 6] =
    ["expense_sync", "approval_intake", "webhook_receipt", "sync_initiation", "attachment_upload", "expense_status"];

/// The most any dependency may log. At TRACE `lambda_runtime` logs every raw event (receipts
/// in base64, webhook headers) and the AWS SDK logs whole requests and responses (an S3 body,
/// a Secrets Manager secret), so DEBUG and TRACE apply to this repository's code only.
const DEPENDENCY_CEILING: LevelFilter = LevelFilter::INFO;

/// Installs the JSON subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's
/// `ApplicationLogLevel`) or `RUST_LOG`, default `info`.
pub fn init() {
    let wanted = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    let (filter, unreadable) = match wanted.trim() {
        "" => (filter(LevelFilter::INFO), false),
        level => level.parse().map_or((filter(LevelFilter::INFO), true), |level| (filter(level), false)),
    };
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line.
        .with_ansi(false);
    tracing_subscriber::registry().with(format.with_filter(filter)).init();
    if unreadable {
        tracing::warn!(log_level = %wanted, "the log level is not one of trace, debug, info, warn, error, off; logging at info");
    }
}

/// `level` for this repository's code; dependencies at most [`DEPENDENCY_CEILING`].
fn filter(level: LevelFilter) -> Targets {
    Targets::new().with_default(level.min(DEPENDENCY_CEILING)).with_targets(OURS.map(|target| (target, level)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn trace_never_reaches_the_runtimes_raw_events_or_the_sdks_bodies() {
        let trace = filter(LevelFilter::TRACE);
        assert!(trace.would_enable("expense_sync::flows::upload", &Level::TRACE));
        assert!(trace.would_enable("webhook_receipt::handler", &Level::TRACE));
        // The runtime's "raw JSON event received from Lambda", the SDK's "transmitting request".
        assert!(!trace.would_enable("lambda_runtime::layers::api_response", &Level::TRACE));
        assert!(!trace.would_enable("aws_smithy_runtime::client::orchestrator", &Level::TRACE));
        assert!(!trace.would_enable("hyper_util::client", &Level::DEBUG));
        assert!(trace.would_enable("lambda_runtime", &Level::INFO));
    }

    #[test]
    fn a_quieter_level_applies_to_dependencies_too() {
        let warn = filter(LevelFilter::WARN);
        assert!(!warn.would_enable("expense_sync", &Level::INFO));
        assert!(!warn.would_enable("lambda_runtime", &Level::INFO));
        assert!(warn.would_enable("lambda_runtime", &Level::WARN));
    }
}
