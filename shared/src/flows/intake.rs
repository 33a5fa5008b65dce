//! Approval intake: store receipts and expenses, then create Codat datasets for them.

use chrono::Utc;

use super::submit::submit_approved;
use crate::codat::CodatClient;
use crate::domain::{ApprovalBatch, Expense, ExpenseId, Status};
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
    let mut stored = known;
    stored.extend(fresh.into_iter().filter(|e| inserted.created.contains(&e.expense_id)));
    if !inserted.existing.is_empty() {
        // A concurrent approval created some of them first: they must match too.
        let raced = store.get_expenses(company, &inserted.existing).await?;
        check_same_content(batch, &raced)?;
        stored.extend(raced);
    }

    submit_approved(store, codat, company, &stored).await?;
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
