//! Sync initiation (v1 only): one sync per company at a time, batching every pending dataset.
//! On the current API the create itself starts the sync, so nothing here runs for it.
//!
//! An initiation whose answer was lost, or whose invocation died, may have started a sync:
//! Codat's sync lists (`syncs/latest|list/status`, the same paths as on the current API) and
//! their transactions tell. Found, it is adopted; the same datasets are never posted twice
//! unless those lists show no sync holding them.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::resolve::find_created_sync;
use super::{apply_once, failure_from, FlowError};
use crate::codat::{CodatClient, CodatError};
use crate::domain::{
    CodatApi, CompanyId, Dataset, DatasetId, Event, ExpenseId, LockHolder, Stage, Sync, SyncId, SyncState,
};
use crate::store::{Store, StoreError};

/// How long an initiating invocation may hold the lock: beyond sync-initiation's 120 s timeout,
/// and short, since one that died holding it (its lost answer is then looked up by whoever
/// takes the lock over) keeps the company's datasets waiting until it runs out.
pub const INITIATION_LEASE: Duration = Duration::minutes(5);
/// A running sync holds the lock until its outcome is recorded; this only frees a company
/// whose sync Codat never finished reporting.
pub const SYNC_LEASE: Duration = Duration::hours(24);
/// Datasets per sync: what one DynamoDB transaction can move together with the sync and lock.
const MAX_DATASETS_PER_SYNC: usize = 98;
/// After a lost answer Codat's lists did not (yet) show a sync: how long the lock is kept
/// before the next initiation looks again (and, if still none, posts).
const LOST_ANSWER_PATIENCE: Duration = Duration::minutes(2);

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
    /// Codat refused access (key, company, account): the datasets stay pending.
    Blocked {
        reason: String,
    },
    /// Codat's answer was lost and its lists do not show the sync yet: the lock is kept a
    /// little while, then the next initiation looks again before posting.
    Unconfirmed {
        reason: String,
    },
}

/// Initiates a sync of the company's pending datasets, unless one runs. A dataset Codat refuses
/// on its own is rejected alone, and the others are initiated at once.
pub async fn initiate_sync(store: &Store, codat: &CodatClient, company: CompanyId) -> Result<Initiated, FlowError> {
    let mut outcome = initiate_once(store, codat, company).await?;
    for _ in 0..MAX_DATASETS_PER_SYNC {
        let Initiated::Rejected { .. } = outcome else { break };
        match initiate_once(store, codat, company).await? {
            Initiated::NothingPending => break,
            next => outcome = next,
        }
    }
    Ok(outcome)
}

/// Posts a sync of `pending`. Codat refusing a batch for its content (not for access) did
/// nothing, so its first half is tried alone, down to a single dataset: one bad dataset never
/// fails the others, which stay pending. `pending` is left as what was last posted.
async fn post_sync(codat: &CodatClient, company: CompanyId, pending: &mut Vec<Dataset>) -> Result<SyncId, CodatError> {
    loop {
        let ids: Vec<DatasetId> = pending.iter().map(|d| d.dataset_id).collect();
        match codat.v1().initiate_sync(company, &ids).await {
            Err(err @ CodatError::Rejected { .. }) if !err.is_access_refusal() && pending.len() > 1 => {
                tracing::warn!(error = %err, datasets = pending.len(), "Codat refused the batch; trying its first half alone");
                pending.truncate(pending.len() / 2);
            }
            answer => return answer,
        }
    }
}

async fn initiate_once(store: &Store, codat: &CodatClient, company: CompanyId) -> Result<Initiated, FlowError> {
    let token = Uuid::new_v4();
    let Some(previous) = store.take_lock(company, token, INITIATION_LEASE).await? else {
        return Ok(Initiated::Busy);
    };
    let holder = LockHolder::Initiation(token);
    let mut pending = store.pending_datasets(company).await?;
    pending.truncate(MAX_DATASETS_PER_SYNC);
    if pending.is_empty() {
        store.release_lock(company, holder).await?;
        return Ok(Initiated::NothingPending);
    }
    let all_expenses: Vec<ExpenseId> = pending.iter().flat_map(|d| d.expense_ids.iter().copied()).collect();

    // A lock left by an initiation means its answer was lost or it died mid-call: look before
    // posting the same datasets again.
    let earlier = previous.filter(|lock| matches!(lock.holder, LockHolder::Initiation(_))).map(|lock| lock.acquired_at);
    let found = match earlier {
        Some(since) => match find_created_sync(codat, company, &all_expenses, since).await {
            Ok(found) => found,
            Err(err) => {
                store.release_lock(company, holder).await?;
                return Err(FlowError::Retry(format!("cannot tell whether an earlier initiation took effect: {err}")));
            }
        },
        None => None,
    };
    // An adopted sync holds the datasets that were pending then; any pending since wait for
    // the next initiation.
    if let Some((_, held)) = &found {
        pending.retain(|d| d.expense_ids.iter().any(|id| held.contains(id)));
    }
    let sent_at = Utc::now();
    let answer = match found {
        Some((sync_id, _)) => {
            tracing::info!(%sync_id, "an earlier initiation's sync found in Codat's lists; adopting it");
            Ok(sync_id)
        }
        None => post_sync(codat, company, &mut pending).await,
    };
    let dataset_ids: Vec<DatasetId> = pending.iter().map(|d| d.dataset_id).collect();
    let expense_ids: Vec<ExpenseId> = pending.iter().flat_map(|d| d.expense_ids.iter().copied()).collect();
    let answer = match answer {
        Err(CodatError::Unavailable { maybe_applied: true, detail }) => {
            match find_created_sync(codat, company, &expense_ids, sent_at).await {
                Ok(Some((sync_id, _))) => {
                    tracing::info!(%sync_id, %detail, "initiate answer lost; its sync found in Codat's lists");
                    Ok(sync_id)
                }
                _ => Err(CodatError::Unavailable { maybe_applied: true, detail }),
            }
        }
        other => other,
    };

    match answer {
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
        Err(err) if err.is_access_refusal() => {
            // Nothing was synced: the datasets stay pending for the sweep's next initiation.
            crate::alert::codat_access_refused("syncInitiation", &err, expense_ids.len());
            store.release_lock(company, holder).await?;
            Ok(Initiated::Blocked { reason: failure_from(Stage::SyncInitiation, &err).reason })
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
            // Codat's lists do not show a sync for them yet: the next initiation looks again.
            tracing::warn!(%detail, "initiate sync answer lost and no sync found yet; looking again shortly");
            store.shorten_lock(company, holder, Utc::now() + LOST_ANSWER_PATIENCE).await?;
            Ok(Initiated::Unconfirmed { reason: detail })
        }
    }
}
