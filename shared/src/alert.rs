//! Conditions a person must fix, raised loudly: an `ERROR` log line naming the condition, and
//! a CloudWatch metric in the embedded metric format (one JSON line on stdout, which Lambda's
//! log pipeline turns into a data point) that the template's alarm watches.

use crate::codat::CodatError;

/// The metric namespace (`METRICS_NAMESPACE`, set per stage by the template).
fn namespace() -> String {
    std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "expense-sync".into())
}

/// Codat refused access (`401`/`402`/`403`/`404`) at `stage`: the API key, the company or the
/// account is wrong. The work waits and continues by itself once that is fixed.
pub fn codat_access_refused(stage: &str, err: &CodatError, expenses: usize) {
    tracing::error!(
        alert = "CodatAccessRefused",
        stage,
        codat_status = err.status(),
        expenses,
        error = %err,
        "Codat refused access: check the API key, its permissions and the company; the expenses wait and continue once it is fixed"
    );
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": now_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": namespace(),
                "Dimensions": [[]],
                "Metrics": [{"Name": "CodatAccessRefused", "Unit": "Count"}],
            }],
        },
        "CodatAccessRefused": 1,
        "stage": stage,
        "codatStatus": err.status(),
    });
    println!("{line}");
}
