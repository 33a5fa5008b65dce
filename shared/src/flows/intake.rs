//! Approval intake: store receipts and expenses, then create Codat datasets for them.

use chrono::Utc;

use super::failure_from;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{
    ApprovalBatch, Dataset, DatasetStatus, Event, Expense, ExpenseId, Stage, Status, MAX_DATASET_ITEMS,
};
use crate::receipts::ReceiptStore;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The expense id is taken by a different expense: 409, nothing written.
    #[error("{field}: expense {expense_id} was already approved with different content")]
    Conflict { field: String, expense_id: ExpenseId },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Receipts(String),
}

/// Records every expense of `batch` (idempotently) and submits those not yet in a dataset.
/// Returns the expenses of the batch as they now stand, in batch order.
pub async fn approve(
    batch: &ApprovalBatch,
    store: &Store,
    receipts: &ReceiptStore,
    codat: &CodatClient,
) -> Result<Vec<Expense>, IntakeError> {
    let company = batch.company_id;
    let ids: Vec<ExpenseId> = batch.expenses.iter().map(|e| e.id()).collect();

    // A re-post of the same expense is a replay; the same id with other content is refused
    // before anything is written.
    let known = store.get_expenses(company, &ids).await?;
    check_same_content(batch, &known)?;

    let now = Utc::now();
    let mut fresh = Vec::new();
    for approved in batch.expenses.iter().filter(|a| !known.iter().any(|k| k.expense_id == a.id())) {
        let receipt = receipts
            .put(company, approved.id(), &approved.receipt)
            .await
            .map_err(|e| IntakeError::Receipts(e.to_string()))?;
        fresh.push(Expense {
            company_id: company,
            expense_id: approved.id(),
            status: Status::Approved,
            transaction: approved.transaction.clone(),
            receipt,
            fingerprint: approved.fingerprint(),
            dataset_id: None,
            sync_id: None,
            attachment_id: None,
            failure: None,
            approved_at: now,
            updated_at: now,
        });
    }
    let inserted = store.insert_expenses(&fresh).await?;
    if !inserted.existing.is_empty() {
        // A concurrent approval created some of them first: they must match too.
        let raced = store.get_expenses(company, &inserted.existing).await?;
        check_same_content(batch, &raced)?;
    }

    submit_approved(store, codat, batch.company_id, &ids).await?;
    let mut current = store.get_expenses(company, &ids).await?;
    current.sort_by_key(|e| ids.iter().position(|id| *id == e.expense_id));
    Ok(current)
}

fn check_same_content(batch: &ApprovalBatch, stored: &[Expense]) -> Result<(), IntakeError> {
    for (index, approved) in batch.expenses.iter().enumerate() {
        if let Some(existing) = stored.iter().find(|e| e.expense_id == approved.id()) {
            if existing.fingerprint != approved.fingerprint() {
                return Err(IntakeError::Conflict {
                    field: format!("expenses[{index}].id"),
                    expense_id: approved.id(),
                });
            }
        }
    }
    Ok(())
}

/// Posts every still-`approved` expense among `ids` to Codat, in datasets of at most 50.
/// Each expense is claimed (`submitting`) before the post, so no two invocations post it.
pub async fn submit_approved(
    store: &Store,
    codat: &CodatClient,
    company: crate::domain::CompanyId,
    ids: &[ExpenseId],
) -> Result<(), StoreError> {
    let expenses = store.get_expenses(company, ids).await?;
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
        let event = |result: &Result<crate::domain::DatasetId, CodatError>| match result {
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
