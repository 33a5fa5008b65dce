//! Posting approved expenses to Codat as datasets of at most 50.

use chrono::Utc;

use super::failure_from;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CompanyId, Dataset, DatasetId, DatasetStatus, Event, Expense, Stage, Status, MAX_DATASET_ITEMS};
use crate::store::{Store, StoreError};

/// Posts every `approved` expense among `expenses` to Codat, in datasets of at most 50.
/// Each is claimed (`submitting`, conditional on still being `approved`) before the post, so
/// no two invocations post it, even when a record given here is already out of date.
pub async fn submit_approved(
    store: &Store,
    codat: &CodatClient,
    company: CompanyId,
    expenses: &[Expense],
) -> Result<(), StoreError> {
    let approved: Vec<&Expense> = expenses.iter().filter(|e| e.status == Status::Approved).collect();
    for chunk in approved.chunks(MAX_DATASET_ITEMS) {
        let claims: Vec<_> = chunk
            .iter()
            .map(|e| (*e, e.transition(Event::SubmissionStarted).expect("approved expenses can be claimed")))
            .collect();
        match store.apply_all(&claims).await {
            Ok(()) => {}
            // Another invocation claimed some of them: it submits them; a later replay of
            // this batch reports how they fared.
            Err(StoreError::Conflict(reason)) => {
                tracing::info!(%reason, "expenses claimed elsewhere; leaving them to that invocation");
                continue;
            }
            Err(err) => return Err(err),
        }
        let claimed: Vec<Expense> = chunk
            .iter()
            .map(|e| {
                let mut e = (*e).clone();
                e.status = Status::Submitting;
                e
            })
            .collect();
        let items: Vec<_> = claimed.iter().map(|e| e.transaction.clone()).collect();
        let outcome = codat.create_expense_dataset(company, &items).await;
        let event = |result: &Result<DatasetId, CodatError>| match result {
            Ok(dataset_id) => Event::DatasetCreated { dataset_id: *dataset_id },
            Err(err @ CodatError::Rejected { .. }) => Event::SubmissionRejected(failure_from(Stage::Submission, err)),
            Err(CodatError::Unavailable { maybe_applied: false, .. }) => Event::SubmissionAbandoned,
            Err(err @ CodatError::Unavailable { maybe_applied: true, .. }) => {
                Event::SubmissionUnconfirmed(failure_from(Stage::Submission, err))
            }
        };
        let moves: Vec<_> = claimed.iter().map(|e| (e, e.transition(event(&outcome)).expect("claimed"))).collect();
        match &outcome {
            Ok(dataset_id) => {
                tracing::info!(%dataset_id, expenses = claimed.len(), "dataset created");
                let dataset = Dataset {
                    company_id: company,
                    dataset_id: *dataset_id,
                    expense_ids: claimed.iter().map(|e| e.expense_id).collect(),
                    status: DatasetStatus::Pending,
                    sync_id: None,
                    created_at: Utc::now(),
                };
                store.record_dataset(&dataset, &moves).await?;
            }
            Err(err) => {
                tracing::warn!(error = %err, expenses = claimed.len(), "dataset not created");
                store.apply_all(&moves).await?;
            }
        }
    }
    Ok(())
}
