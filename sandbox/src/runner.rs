//! Running syncs: v1 syncs run as soon as they are initiated; current-API syncs of one
//! company are queued and run one after another (FIFO), as Codat queues them.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::exact::{decimal, Amounts};
use crate::state::{Company, Shared, SyncPhase, Txn, TxnKind, TxnStatus};
use crate::transfers;
use crate::webhooks::deliver;

/// Why a transaction has no line total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTotal {
    /// An amount is missing or not a number.
    Unreadable,
    /// The sum is beyond what a .NET decimal holds (each amount alone fit: the create checked).
    OutOfRange,
}

/// Sum of netAmount + taxAmount (absent: 0) over a transaction's lines, read from its exact JSON
/// text and added as `Decimal`, the way Codat's .NET `decimal` adds: exact, save that a sum
/// needing more than 28-29 significant digits is rounded to fit, as .NET's is (its sign, which
/// decides the outcome, never changes).
pub fn line_total(transaction: &RawValue) -> Result<Decimal, NoTotal> {
    let amount = |raw: Option<&RawValue>| raw.map(|raw| decimal(raw.get()).ok_or(NoTotal::Unreadable)).transpose();
    let amounts = Amounts::read(transaction).ok_or(NoTotal::Unreadable)?;
    amounts.lines.iter().try_fold(Decimal::ZERO, |total, line| {
        let net = amount(line.net.as_deref())?.ok_or(NoTotal::Unreadable)?;
        let tax = amount(line.tax.as_deref())?.unwrap_or_default();
        total.checked_add(net).and_then(|total| total.checked_add(tax)).ok_or(NoTotal::OutOfRange)
    })
}

/// A total for a message: exact, with at least two decimal places (`-3.00`, `-0.001`).
pub fn shown(total: Decimal) -> String {
    if total.scale() >= 2 {
        total.to_string()
    } else {
        format!("{total:.2}")
    }
}

/// Why an expense or reimbursable expense fails: its lines must total more than zero.
///
/// Amounts that parse but sum beyond a decimal's range fail their own transaction here, as a
/// ValidationError like any other bad total, rather than refusing the create with a 400: the
/// sandbox checks totals per transaction when the sync runs, and the other transactions of the
/// sync still complete.
fn expense_failure(txn: &Txn) -> Option<String> {
    let kind = match txn.kind {
        TxnKind::Reimbursable => "reimbursable expense",
        _ => txn.body.get("type").and_then(Value::as_str).unwrap_or("Payment"),
    };
    match line_total(&txn.raw) {
        Ok(total) if total > Decimal::ZERO => None,
        Ok(total) => {
            Some(format!("The line item total {} must be greater than zero for a {kind} transaction", shown(total)))
        }
        Err(NoTotal::OutOfRange) => Some(format!(
            "The line item total is beyond the range of a decimal (±{}) for a {kind} transaction",
            Decimal::MAX
        )),
        Err(NoTotal::Unreadable) => Some(format!("The line item total could not be computed for a {kind} transaction")),
    }
}

/// The sandbox's rule for a transaction of any kind: `None` when it completes.
fn failure(txn: &Txn) -> Option<String> {
    match txn.kind {
        TxnKind::Expense | TxnKind::Reimbursable => expense_failure(txn),
        TxnKind::Transfer => transfers::transfer_failure(txn),
        TxnKind::Adjustment => transfers::adjustment_failure(txn),
    }
}

/// Settles every transaction of the sync, in the version the sync carried (Completed, or
/// ValidationError by its kind's rule) and marks it done; returns the webhook's transaction list.
fn settle(state: &mut Company, sync_id: &str) -> Vec<Value> {
    let mut report = Vec::new();
    for id in state.sync_transactions(sync_id) {
        let Some(txn) = state.txn_in_mut(sync_id, &id) else { continue };
        let failure = failure(txn);
        txn.status = if failure.is_some() { TxnStatus::ValidationError } else { TxnStatus::Completed };
        txn.message = failure;
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
    use super::{line_total, shown, NoTotal};
    use serde_json::value::RawValue;

    fn total(text: &str) -> Result<String, NoTotal> {
        let raw = RawValue::from_string(text.to_string()).expect("json");
        line_total(&raw).map(shown)
    }

    #[test]
    fn totals_are_exact_and_allow_missing_tax() {
        let total = |text| total(text).expect("a total");
        assert_eq!(total(r#"{"lines": [{"netAmount": 1.5}, {"netAmount": 1, "taxAmount": 0.2}]}"#), "2.70");
        assert_eq!(total(r#"{"lines": [{"netAmount": 0.1, "taxAmount": null}, {"netAmount": 0.2}]}"#), "0.30");
        // Floats make both of these zero.
        assert_eq!(total(r#"{"lines": [{"netAmount": 0.001}]}"#), "0.001");
        assert_eq!(total(r#"{"lines": [{"netAmount": 1e24, "taxAmount": -999999999999999999999999.99}]}"#), "0.01");
        assert_eq!(total(r#"{"lines": [{"netAmount": 0.1}, {"netAmount": 0.2}, {"netAmount": -0.3}]}"#), "0.00");
        assert_eq!(
            total(r#"{"lines": [{"netAmount": 12345678901234567.89, "taxAmount": 0.01}]}"#),
            "12345678901234567.90"
        );
        assert_eq!(total("{}"), "0.00");
    }

    #[test]
    fn sums_beyond_a_decimal_and_unreadable_amounts_have_no_total() {
        let max = "79228162514264337593543950335";
        assert_eq!(
            total(&format!(r#"{{"lines": [{{"netAmount": {max}}}, {{"netAmount": 1}}]}}"#)),
            Err(NoTotal::OutOfRange)
        );
        let negative = format!(r#"{{"lines": [{{"netAmount": -{max}, "taxAmount": -{max}}}]}}"#);
        assert_eq!(total(&negative), Err(NoTotal::OutOfRange));
        assert_eq!(total(r#"{"lines": [{"netAmount": "12"}]}"#), Err(NoTotal::Unreadable));
        assert_eq!(total(r#"{"lines": [{"taxAmount": 1}]}"#), Err(NoTotal::Unreadable));
        assert_eq!(total(r#"{"lines": [{"netAmount": 1e400}]}"#), Err(NoTotal::Unreadable));
    }
}
