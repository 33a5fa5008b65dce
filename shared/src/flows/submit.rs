//! Creating approved expenses in Codat: chunks of at most 50 of one kind (a transfer alone), each with the API
//! its expenses were approved for. A v1 create answers a dataset (synced later by
//! `initiate`); a current-API create answers the sync Codat queued, recorded at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::stream::{self, StreamExt};

use super::failure_from;
use super::resolve::resolve_lost_creates;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{
    CodatApi, CompanyId, Created, Dataset, DatasetStatus, EntryKind, Event, Expense, Stage, Status, Sync, SyncId,
    SyncState, Transition,
};
use crate::store::{Store, StoreError};

/// How a submission went, beyond what each expense's status says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Submission {
    /// Expenses whose create answer was lost and that Codat's sync lists do not show yet: they
    /// stay `submitting` and the sweep keeps asking Codat about them.
    pub unresolved: usize,
    /// Expenses left `approved` because a create could not have finished before the deadline;
    /// the sweep (or a re-post) submits them.
    pub deferred: usize,
}

/// Create calls in flight at once for one submission.
const CREATES_AT_ONCE: usize = 3;

/// Time kept back after a create's retry budget to record its outcome.
const RECORDING: Duration = Duration::from_secs(3);

/// Posts every `approved` expense among `expenses` to Codat. Each is claimed (`submitting`,
/// conditional on still being `approved`) before the post, so no two invocations post it, even
/// when a record given here is already out of date. A chunk whose create could outlast
/// `deadline` (the invocation's end) is not started: its expenses stay `approved`.
pub async fn submit_approved(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    expenses: &[Expense],
    deadline: Option<Instant>,
) -> Result<Submission, StoreError> {
    // One create call takes one API's entries of one kind (card, reimbursable, adjustment;
    // a transfer is one call of its own).
    let mut groups: BTreeMap<(CodatApi, EntryKind), Vec<&Expense>> = BTreeMap::new();
    for expense in expenses.iter().filter(|e| e.status == Status::Approved) {
        groups.entry((expense.api, expense.entry.kind())).or_default().push(expense);
    }
    let chunks: Vec<(CodatApi, &[&Expense])> = groups
        .iter()
        .flat_map(|((api, kind), group)| group.chunks(kind.per_create()).map(move |chunk| (*api, chunk)))
        .collect();
    // A few creates side by side: an approval of 100 is two or more calls, each waiting on Codat.
    let creates: Vec<_> =
        chunks.into_iter().map(|(api, chunk)| submit_in_time(store, codat, company, api, chunk, deadline)).collect();
    let outcomes: Vec<Result<Submission, StoreError>> =
        stream::iter(creates).buffer_unordered(CREATES_AT_ONCE).collect().await;
    let mut submission = Submission::default();
    for outcome in outcomes {
        let outcome = outcome?;
        submission.unresolved += outcome.unresolved;
        submission.deferred += outcome.deferred;
    }
    Ok(submission)
}

/// Submits one chunk unless its create could outlast `deadline`.
async fn submit_in_time(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    api: CodatApi,
    chunk: &[&Expense],
    deadline: Option<Instant>,
) -> Result<Submission, StoreError> {
    if deadline.is_some_and(|end| Instant::now() + codat.retry_budget() + RECORDING > end) {
        tracing::info!(expenses = chunk.len(), "not enough time left for another create; left approved");
        return Ok(Submission { unresolved: 0, deferred: chunk.len() });
    }
    let unresolved = submit_chunk(store, codat, company, api, chunk).await?;
    Ok(Submission { unresolved, deferred: 0 })
}

/// Claims, creates and records one chunk; returns how many were left unresolved.
async fn submit_chunk(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    api: CodatApi,
    chunk: &[&Expense],
) -> Result<usize, StoreError> {
    let claims: Vec<_> = chunk
        .iter()
        .map(|e| (*e, e.transition(Event::SubmissionStarted).expect("approved expenses can be claimed")))
        .collect();
    match store.apply_all(&claims).await {
        Ok(()) => {}
        // Another invocation claimed some of them: it submits them; a later replay of this
        // batch reports how they fared.
        Err(StoreError::Conflict(reason)) => {
            tracing::info!(%reason, "expenses claimed elsewhere; leaving them to that invocation");
            return Ok(0);
        }
        Err(err) => return Err(err),
    }
    let claimed_at = Utc::now();
    let claimed: Vec<Expense> =
        chunk.iter().map(|e| Expense { status: Status::Submitting, updated_at: claimed_at, ..(*e).clone() }).collect();
    let entries: Vec<_> = claimed.iter().map(|e| &e.entry).collect();
    let outcome = codat.create(api, company, &entries).await;
    match outcome {
        Ok(Created::Dataset(dataset_id)) => {
            tracing::info!(%dataset_id, expenses = claimed.len(), "dataset created");
            let dataset = Dataset {
                company_id: company,
                dataset_id,
                expense_ids: claimed.iter().map(|e| e.expense_id).collect(),
                status: DatasetStatus::Pending,
                sync_id: None,
                created_at: Utc::now(),
            };
            store.record_dataset(&dataset, &moves(&claimed, Event::DatasetCreated { dataset_id })).await?;
        }
        Ok(Created::Sync(sync_id)) => {
            tracing::info!(%sync_id, expenses = claimed.len(), "transactions created; Codat queued their sync");
            record_created_sync(store, company, sync_id, &claimed).await?;
        }
        Err(err) if err.is_access_refusal() => {
            crate::alert::codat_access_refused("submission", &err, claimed.len());
            let blocked = Event::SubmissionBlocked(failure_from(Stage::Submission, &err));
            store.apply_all(&moves(&claimed, blocked)).await?;
        }
        Err(err @ CodatError::Rejected { .. }) => {
            tracing::warn!(error = %err, expenses = claimed.len(), "Codat refused the transactions");
            store.apply_all(&moves(&claimed, Event::SubmissionRejected(failure_from(Stage::Submission, &err)))).await?;
        }
        Err(CodatError::Unavailable { maybe_applied: false, detail }) => {
            tracing::warn!(%detail, expenses = claimed.len(), "Codat unavailable; the sweep submits them later");
            store.apply_all(&moves(&claimed, Event::SubmissionAbandoned)).await?;
        }
        Err(err @ CodatError::Unavailable { maybe_applied: true, .. }) if api == CodatApi::V1 => {
            // v1 cannot tell whether a dataset was created: a person checks.
            tracing::error!(error = %err, expenses = claimed.len(), "dataset answer lost");
            store
                .apply_all(&moves(&claimed, Event::SubmissionUnconfirmed(failure_from(Stage::Submission, &err))))
                .await?;
        }
        Err(err @ CodatError::Unavailable { maybe_applied: true, .. }) => {
            tracing::warn!(error = %err, expenses = claimed.len(), "create answer lost; asking Codat's sync lists");
            let resolution = resolve_lost_creates(store, codat, company, claimed).await?;
            return Ok(resolution.unresolved.len());
        }
    }
    Ok(0)
}

/// Records a sync Codat created for `claimed` (all `submitting`) and moves them to `syncing`.
/// Losing the race to another invocation recording the same sync is not an error.
pub(crate) async fn record_created_sync(
    store: &Store,
    company: CompanyId,
    sync_id: SyncId,
    claimed: &[Expense],
) -> Result<(), StoreError> {
    let sync = Sync {
        company_id: company,
        sync_id,
        api: CodatApi::Expenses,
        dataset_ids: Vec::new(),
        expense_ids: claimed.iter().map(|e| e.expense_id).collect(),
        state: SyncState::Running,
        started_at: Utc::now(),
        finished_at: None,
    };
    match store.record_created_sync(&sync, &moves(claimed, Event::SyncCreated { sync_id })).await {
        Err(StoreError::Conflict(reason)) => {
            tracing::info!(%sync_id, %reason, "sync already recorded by another invocation");
            Ok(())
        }
        other => other,
    }
}

/// `event` for each claimed (`submitting`) expense.
fn moves(claimed: &[Expense], event: Event) -> Vec<(&Expense, Transition)> {
    claimed.iter().map(|e| (e, e.transition(event.clone()).expect("a claimed expense takes its outcome"))).collect()
}
