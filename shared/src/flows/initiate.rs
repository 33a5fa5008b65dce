//! Sync initiation (v1 only): one sync per company at a time, batching every pending dataset.
//! On the current API the create itself starts the sync, so nothing here runs for it.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::{apply_once, failure_from, FlowError};
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CodatApi, CompanyId, DatasetId, Event, ExpenseId, LockHolder, Stage, Sync, SyncId, SyncState};
use crate::store::{Store, StoreError};

/// How long an initiating invocation may hold the lock: far beyond the function's timeout.
pub const INITIATION_LEASE: Duration = Duration::minutes(15);
/// A running sync holds the lock until its outcome is recorded; this only frees a company
/// whose sync Codat never finished reporting.
pub const SYNC_LEASE: Duration = Duration::hours(24);
/// Datasets per sync: what one DynamoDB transaction can move together with the sync and lock.
const MAX_DATASETS_PER_SYNC: usize = 98;

#[derive(Debug, PartialEq, Eq)]
pub enum Initiated {
    Started {
        sync_id: SyncId,
        datasets: usize,
    },
    NothingPending,
    /// Another sync holds the lock; its end re-triggers initiation.
    Busy,
    Rejected {
        reason: String,
    },
    /// Codat's answer was lost: the lock stays until its lease ends, then the sweep retries.
    Unconfirmed {
        reason: String,
    },
}

pub async fn initiate_sync(store: &Store, codat: &CodatClient, company: CompanyId) -> Result<Initiated, FlowError> {
    let token = Uuid::new_v4();
    if !store.acquire_lock(company, token, INITIATION_LEASE).await? {
        return Ok(Initiated::Busy);
    }
    let holder = LockHolder::Initiation(token);
    let mut pending = store.pending_datasets(company).await?;
    pending.truncate(MAX_DATASETS_PER_SYNC);
    if pending.is_empty() {
        store.release_lock(company, holder).await?;
        return Ok(Initiated::NothingPending);
    }
    let dataset_ids: Vec<DatasetId> = pending.iter().map(|d| d.dataset_id).collect();
    let expense_ids: Vec<ExpenseId> = pending.iter().flat_map(|d| d.expense_ids.iter().copied()).collect();

    match codat.v1().initiate_sync(company, &dataset_ids).await {
        Ok(sync_id) => {
            tracing::info!(%sync_id, datasets = dataset_ids.len(), expenses = expense_ids.len(), "sync initiated");
            let sync = Sync {
                company_id: company,
                sync_id,
                api: CodatApi::V1,
                dataset_ids,
                expense_ids: expense_ids.clone(),
                state: SyncState::Running,
                started_at: Utc::now(),
                finished_at: None,
            };
            store.start_sync(&sync, token, SYNC_LEASE).await?;
            // Not in the transaction above (it would not fit 50 expenses per dataset); an
            // expense left `submitted` by a crash here is moved when the outcome is recorded.
            for mut expense in store.get_expenses(company, &expense_ids).await? {
                let event = Event::SyncStarted { sync_id };
                apply_once(store, &mut expense, event.clone()).await?;
            }
            Ok(Initiated::Started { sync_id, datasets: sync.dataset_ids.len() })
        }
        Err(err @ CodatError::Rejected { .. }) => {
            let failure = failure_from(Stage::SyncInitiation, &err);
            tracing::warn!(error = %err, "Codat refused to sync the datasets");
            for mut expense in store.get_expenses(company, &expense_ids).await? {
                apply_once(store, &mut expense, Event::SyncRejected(failure.clone())).await?;
            }
            match store.reject_datasets(company, &dataset_ids, token).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(err) => return Err(err.into()),
            }
            Ok(Initiated::Rejected { reason: failure.reason })
        }
        Err(CodatError::Unavailable { maybe_applied: false, detail }) => {
            store.release_lock(company, holder).await?;
            Err(FlowError::Retry(format!("Codat unavailable: {detail}")))
        }
        Err(CodatError::Unavailable { maybe_applied: true, detail }) => {
            tracing::error!(%detail, "initiate sync answer lost; lock kept until its lease ends");
            Ok(Initiated::Unconfirmed { reason: detail })
        }
    }
}
