//! Running syncs: v1 syncs run as soon as they are initiated; current-API syncs of one
//! company are queued and run one after another (FIFO), as Codat queues them.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::state::{Company, Shared, SyncPhase, TxnKind, TxnStatus};
use crate::webhooks::deliver;

/// Sum of netAmount + taxAmount over a transaction's lines, in hundredths (cents), saturating;
/// `None` when an amount is missing or not a finite number.
pub fn line_total(transaction: &Value) -> Option<i64> {
    let cents = |v: &Value, required: bool| -> Option<i64> {
        match v {
            Value::Null if !required => Some(0),
            // `as` saturates; serde_json numbers are always finite.
            _ => v.as_f64().filter(|f| f.is_finite()).map(|f| (f * 100.0).round() as i64),
        }
    };
    let lines = transaction.get("lines").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    lines.iter().try_fold(0i64, |total, line| {
        let net = cents(line.get("netAmount").unwrap_or(&Value::Null), true)?;
        let tax = cents(line.get("taxAmount").unwrap_or(&Value::Null), false)?;
        Some(total.saturating_add(net).saturating_add(tax))
    })
}

/// Settles every transaction of the sync (Completed, or ValidationError when its lines total
/// zero or less) and marks it done; returns the webhook's transaction list.
fn settle(state: &mut Company, sync_id: &str) -> Vec<Value> {
    let mut report = Vec::new();
    for id in state.sync_transactions(sync_id) {
        let Some(txn) = state.transactions.get_mut(&id) else { continue };
        let kind = match txn.kind {
            TxnKind::Expense => txn.body.get("type").and_then(Value::as_str).unwrap_or("Payment").to_string(),
            TxnKind::Reimbursable => "reimbursable expense".to_string(),
        };
        match line_total(&txn.body) {
            Some(total) if total > 0 => txn.status = TxnStatus::Completed,
            Some(total) => {
                txn.status = TxnStatus::ValidationError;
                txn.message = Some(format!(
                    "The line item total {:.2} must be greater than zero for a {kind} transaction",
                    total as f64 / 100.0
                ));
            }
            None => {
                txn.status = TxnStatus::ValidationError;
                txn.message = Some(format!("The line item total could not be computed for a {kind} transaction"));
            }
        }
        report.push(json!({
            "id": id,
            "status": if txn.status == TxnStatus::Completed { "Completed" } else { "Failed" },
            "errorMessage": txn.message,
        }));
    }
    if let Some(sync) = state.syncs.get_mut(sync_id) {
        sync.phase = SyncPhase::Done;
        sync.finished = Some(chrono::Utc::now());
    }
    state.running_syncs = state.running_syncs.saturating_sub(1);
    report
}

/// Finishes a running sync after the configured delay, then sends its webhook.
/// Returns `false` when the sandbox was reset meanwhile (nothing is settled then).
async fn finish(shared: &Arc<Shared>, company: &str, sync_id: &str, generation: u64) -> bool {
    tokio::time::sleep(shared.config.sync_delay).await;
    let report = {
        let mut inner = shared.lock();
        if inner.generation != generation {
            return false;
        }
        let Some(state) = inner.companies.get_mut(company) else { return false };
        settle(state, sync_id)
    };
    let successful = report.iter().all(|t| t["status"] == "Completed");
    let (shared, company, sync_id) = (shared.clone(), company.to_string(), sync_id.to_string());
    // Delivery (with its retries) must not hold up the next queued sync.
    tokio::spawn(async move { deliver(&shared, &company, &sync_id, successful, report).await });
    true
}

/// A v1 sync: already marked running by the initiate call.
pub async fn run_v1_sync(shared: Arc<Shared>, company: String, sync_id: String, generation: u64) {
    finish(&shared, &company, &sync_id, generation).await;
}

/// Runs the company's queued current-API syncs one at a time until the queue is empty.
pub async fn drain_queue(shared: Arc<Shared>, company: String, generation: u64) {
    loop {
        let sync_id = {
            let mut inner = shared.lock();
            if inner.generation != generation {
                return;
            }
            let Some(state) = inner.companies.get_mut(&company) else { return };
            let Some(sync_id) = state.queue.pop_front() else {
                state.worker = false;
                return;
            };
            if let Some(sync) = state.syncs.get_mut(&sync_id) {
                sync.phase = SyncPhase::Running;
            }
            state.start_running();
            sync_id
        };
        if !finish(&shared, &company, &sync_id, generation).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_total;
    use serde_json::json;

    #[test]
    fn totals_saturate_and_allow_missing_tax() {
        assert_eq!(line_total(&json!({"lines": [{"netAmount": 1.5}, {"netAmount": 1, "taxAmount": 0.2}]})), Some(270));
        assert_eq!(line_total(&json!({"lines": [{"netAmount": 1e300}, {"netAmount": 1e300}]})), Some(i64::MAX));
        assert_eq!(line_total(&json!({"lines": [{"netAmount": -1e300, "taxAmount": -1e300}]})), Some(i64::MIN));
        assert_eq!(line_total(&json!({})), Some(0));
        assert_eq!(line_total(&json!({"lines": [{"netAmount": "12"}]})), None);
    }
}
