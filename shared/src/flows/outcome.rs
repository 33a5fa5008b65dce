//! Recording a finished sync: Codat's per-transaction statuses become expense outcomes.
//! Used by the webhook and, when a webhook is lost, by the schedule sweep.

use std::collections::HashMap;

use super::{apply_once, FlowError};
use crate::codat::{CodatClient, CodatError, TransactionMetadata, TransactionStatus};
use crate::domain::{CompanyId, Event, ExpenseId, Failure, Stage, Status, SyncId, SyncState};
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

/// The event Codat's report on one transaction means for its expense; `None` while it is open.
pub fn event_for(metadata: &TransactionMetadata) -> Option<Event> {
    let status = metadata.status.as_ref()?;
    match status {
        TransactionStatus::Completed if metadata.is_completed_expense() => Some(Event::TransactionCompleted),
        TransactionStatus::Completed => Some(Event::TransactionFailed(Failure {
            stage: Stage::Sync,
            reason: format!(
                "Codat synced it as a {:?} transaction; receipts can only be attached to expense transactions",
                metadata.integration_type
            ),
            codat_status: Some("Completed".into()),
            correlation_id: None,
        })),
        TransactionStatus::Pending | TransactionStatus::Unknown => None,
        TransactionStatus::ValidationError | TransactionStatus::PushError | TransactionStatus::Other(_) => {
            Some(Event::TransactionFailed(Failure {
                stage: Stage::Sync,
                reason: metadata.message.clone().unwrap_or_else(|| format!("Codat reported {}", status.as_str())),
                codat_status: Some(status.as_str().to_string()),
                correlation_id: None,
            }))
        }
    }
}

pub async fn record_sync_outcome(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
) -> Result<Recorded, FlowError> {
    record(store, codat, company, sync_id, false).await
}

/// Like [`record_sync_outcome`], for a sync Codat finished long ago: expenses Codat still has
/// not reported become `unconfirmed`, so the sync can finish and release the company's lock.
pub async fn close_sync(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
) -> Result<Recorded, FlowError> {
    record(store, codat, company, sync_id, true).await
}

async fn record(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    sync_id: SyncId,
    give_up_on_unreported: bool,
) -> Result<Recorded, FlowError> {
    let Some(sync) = store.get_sync(company, sync_id).await? else {
        return Ok(Recorded::UnknownSync);
    };
    if sync.state == SyncState::Finished {
        return Ok(Recorded::AlreadyFinished);
    }
    let transactions = codat.sync_transactions(company, sync_id).await.map_err(|err| match err {
        CodatError::Rejected { .. } | CodatError::Unavailable { .. } => FlowError::Retry(err.to_string()),
    })?;
    let mut reported: HashMap<ExpenseId, &TransactionMetadata> = HashMap::new();
    for metadata in &transactions {
        match metadata.transaction_id.as_deref().map(str::parse::<ExpenseId>) {
            Some(Ok(id)) => {
                reported.insert(id, metadata);
            }
            _ => {
                tracing::warn!(transaction_id = ?metadata.transaction_id, "Codat reported a transaction id that is not ours")
            }
        }
    }

    let (mut synced, mut failed, mut waiting) = (0, 0, 0);
    for mut expense in store.get_expenses(company, &sync.expense_ids).await? {
        let span = tracing::info_span!("expense", expense_id = %expense.expense_id);
        let _enter = span.enter();
        if expense.status == Status::Submitted {
            apply_once(store, &mut expense, Event::SyncStarted { sync_id }).await?;
        }
        if let Some(event) = reported.get(&expense.expense_id).and_then(|m| event_for(m)) {
            apply_once(store, &mut expense, event).await?;
        } else if give_up_on_unreported && expense.status == Status::Syncing {
            let last_word = reported.get(&expense.expense_id).and_then(|m| m.status.as_ref());
            let failure = Failure {
                stage: Stage::Sync,
                reason: format!(
                    "Codat finished the sync but has not reported a final status for this transaction (last: {}); \
                     check it in Codat",
                    last_word.map_or("not listed", |s| s.as_str())
                ),
                codat_status: last_word.map(|s| s.as_str().to_string()),
                correlation_id: None,
            };
            apply_once(store, &mut expense, Event::TransactionUnreported(failure)).await?;
        }
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
    if store.finish_sync(company, sync_id).await? {
        tracing::info!(synced, failed, "sync finished; lock released");
        Ok(Recorded::Finished { synced, failed })
    } else {
        Ok(Recorded::AlreadyFinished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codat::IntegrationType;

    fn metadata(status: &str, integration: Option<IntegrationType>) -> TransactionMetadata {
        serde_json::from_value::<TransactionMetadata>(serde_json::json!({"status": status}))
            .map(|mut m| {
                m.integration_type = integration;
                m.message = Some("The line item total must equal the transaction total".into());
                m
            })
            .unwrap()
    }

    #[test]
    fn statuses_map_to_expense_events() {
        assert_eq!(
            event_for(&metadata("Completed", Some(IntegrationType::Expenses))),
            Some(Event::TransactionCompleted)
        );
        assert_eq!(event_for(&metadata("Completed", None)), Some(Event::TransactionCompleted));
        assert!(matches!(
            event_for(&metadata("Completed", Some(IntegrationType::Bankfeeds))),
            Some(Event::TransactionFailed(_))
        ));
        assert_eq!(event_for(&metadata("Pending", None)), None);
        assert_eq!(event_for(&metadata("Unknown", None)), None);
        let Some(Event::TransactionFailed(failure)) = event_for(&metadata("ValidationError", None)) else { panic!() };
        assert_eq!(failure.codat_status.as_deref(), Some("ValidationError"));
        assert!(failure.reason.contains("line item total"));
        assert!(matches!(event_for(&metadata("SomethingNew", None)), Some(Event::TransactionFailed(_))));
    }
}
