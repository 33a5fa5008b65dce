//! Recording a finished sync: Codat's per-transaction statuses become expense outcomes.
//! Used by the webhook and, when a webhook is lost, by the schedule sweep.

use std::collections::HashMap;

use super::{apply_many, FlowError};
use crate::codat::{CodatClient, CodatError, Transaction, TransactionStatus};
use crate::domain::{
    CodatApi, CompanyId, Event, Expense, ExpenseId, Failure, ReceivedNotice, Stage, Status, SyncId, SyncState,
};
use crate::store::Store;

#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    Finished {
        synced: usize,
        failed: usize,
    },
    /// Some transactions have no final status yet: the sync stays open for the sweep.
    StillRunning {
        waiting: usize,
    },
    AlreadyFinished,
    /// Not a sync this deployment started (another system on the same Codat client).
    UnknownSync,
}

/// Records the outcome of the sync a webhook notified (from the notice's stream record). A sync
/// not recorded here is acknowledged, not retried: retrying the record would hold up every
/// record behind it on the stream's shard. If it is ours after all (its create's answer was
/// still being written), the sweep polls it like any sync whose webhook is late.
pub async fn record_notified_outcome(
    store: &Store,
    codat: &CodatClient,
    notice: &ReceivedNotice,
) -> Result<Recorded, FlowError> {
    let recorded = record_sync_outcome(store, codat, notice.company_id, notice.sync_id).await?;
    if recorded == Recorded::UnknownSync {
        tracing::info!(
            age_ms = (chrono::Utc::now() - notice.received_at).num_milliseconds(),
            "notice of a sync not recorded here; if it is ours, the sweep polls it"
        );
    }
    Ok(recorded)
}

pub async fn record_sync_outcome(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
) -> Result<Recorded, FlowError> {
    record(store, codat, company, sync_id, Closing::No).await
}

/// How a sync that may never report everything is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// Record what Codat reports; keep the sync open while anything lacks a final status.
    No,
    /// Codat finished the sync long ago: what it still has not reported becomes `unconfirmed`
    /// (`sync_error`: the sync's own error, if it failed).
    Unreported { sync_error: Option<String> },
    /// Codat never said the sync finished, or could not be read about it, before the absolute
    /// deadline: it is closed on whatever can be read, the rest `unconfirmed` with `reason`.
    Deadline { reason: String },
}

/// Closes a sync that will not report everything (see [`Closing`]), so it can finish and, on
/// v1, release the company's lock.
pub async fn close_sync(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
    closing: Closing,
) -> Result<Recorded, FlowError> {
    record(store, codat, company, sync_id, closing).await
}

async fn record(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
    closing: Closing,
) -> Result<Recorded, FlowError> {
    let Some(sync) = store.get_sync(company, sync_id).await? else {
        return Ok(Recorded::UnknownSync);
    };
    if sync.state == SyncState::Finished {
        return Ok(Recorded::AlreadyFinished);
    }
    let transactions = match codat.sync_transactions(company, sync_id).await {
        Ok(transactions) => transactions,
        Err(err) if matches!(closing, Closing::Deadline { .. }) => {
            tracing::warn!(error = %err, "closing an overdue sync without its transactions");
            Vec::new()
        }
        Err(err @ (CodatError::Rejected { .. } | CodatError::Unavailable { .. })) => {
            return Err(FlowError::Retry(err.to_string()))
        }
    };
    let give_up_on_unreported = closing != Closing::No;
    let mut reported: HashMap<ExpenseId, &Transaction> = HashMap::new();
    for transaction in &transactions {
        match transaction.expense_id() {
            Some(id) => {
                reported.insert(id, transaction);
            }
            None => {
                tracing::warn!(transaction_id = ?transaction.transaction_id, "Codat reported a transaction id that is not ours")
            }
        }
    }

    // Two rounds of batched writes: a v1 sync's expenses start syncing, then each takes the
    // outcome Codat reported (or, when closing, the want of one).
    let (submitted, others): (Vec<Expense>, Vec<Expense>) =
        store.get_expenses(company, &sync.expense_ids).await?.into_iter().partition(|e| e.status == Status::Submitted);
    let mut starting: Vec<(Expense, Event)> =
        submitted.into_iter().map(|e| (e, Event::SyncStarted { sync_id })).collect();
    apply_many(store, &mut starting).await?;

    let mut outcomes = Vec::new();
    let mut untouched = Vec::new();
    for expense in others.into_iter().chain(starting.into_iter().map(|(e, _)| e)) {
        let takes_attachment = expense.entry.kind().takes_attachment();
        let transaction = reported.get(&expense.expense_id);
        if let Some(event) = transaction.and_then(|t| t.event(takes_attachment)) {
            outcomes.push((expense, event));
        } else if give_up_on_unreported && expense.status == Status::Syncing {
            let failure = unreported(&closing, transaction.and_then(|t| t.status.as_ref()));
            outcomes.push((expense, Event::TransactionUnreported(failure)));
        } else {
            untouched.push(expense);
        }
    }
    apply_many(store, &mut outcomes).await?;

    let (mut synced, mut failed, mut waiting) = (0, 0, 0);
    for expense in untouched.iter().chain(outcomes.iter().map(|(e, _)| e)) {
        match expense.status {
            // No final word from Codat yet (or it raced another invocation): keep the sync open.
            Status::Submitted | Status::Syncing => waiting += 1,
            Status::Failed | Status::Unconfirmed => failed += 1,
            _ => synced += 1,
        }
    }
    if waiting > 0 {
        tracing::info!(waiting, "sync has transactions without a final status");
        return Ok(Recorded::StillRunning { waiting });
    }
    if store.finish_sync(&sync).await? {
        tracing::info!(synced, failed, releases_lock = sync.api == CodatApi::V1, "sync finished");
        Ok(Recorded::Finished { synced, failed })
    } else {
        Ok(Recorded::AlreadyFinished)
    }
}

/// Why an expense a closed sync never reported on is `unconfirmed`; `last_word`: the last status
/// Codat listed for its transaction.
fn unreported(closing: &Closing, last_word: Option<&TransactionStatus>) -> Failure {
    let last = last_word.map_or("not listed", |s| s.as_str());
    let reason = match closing {
        Closing::Deadline { reason } => format!("{reason} (last transaction status: {last}); check it in Codat"),
        Closing::Unreported { sync_error: Some(error) } => format!(
            "Codat's sync failed ({error}) without a final status for this transaction (last: {last}); \
             check it in Codat"
        ),
        _ => format!(
            "Codat finished the sync but has not reported a final status for this transaction (last: {last}); \
             check it in Codat"
        ),
    };
    Failure {
        stage: Stage::Sync,
        reason,
        codat_status: last_word.map(|s| s.as_str().to_string()),
        correlation_id: None,
    }
}
