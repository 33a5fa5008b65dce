//! Approval intake: store receipts and expenses, then create them in Codat.

use std::time::Instant;

use chrono::Utc;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::submit::submit_approved;
use crate::codat::CodatClient;
use crate::domain::{ApprovalBatch, ApprovedExpense, CodatApi, CompanyId, Expense, ExpenseId, ReceiptRef, Status};
use crate::receipts::{ReceiptError, ReceiptStore};
use crate::store::{Store, StoreError};

/// Receipt uploads to S3 in flight at once during one approval.
const RECEIPTS_AT_ONCE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The expense id is taken by a different expense: 409 naming the first field that differs,
    /// nothing written.
    #[error("{field}: expense {expense_id} was already approved with different content")]
    Conflict { field: String, expense_id: ExpenseId },
    /// Nothing of the approval was stored: a repeat starts afresh.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The approval is stored, but submitting it to Codat was cut short: the sweep submits
    /// what is left, and a repeat is a replay.
    #[error("stored, then: {0}")]
    Interrupted(StoreError),
    #[error("{0}")]
    Receipts(String),
}

/// The expenses of a batch as they now stand, in batch order.
#[derive(Debug)]
pub struct Approved {
    pub expenses: Vec<Expense>,
    /// Expenses whose create answer was lost and that Codat could not yet confirm.
    pub unresolved: usize,
    /// Expenses not sent for lack of time before `deadline`: saved as `approved`.
    pub deferred: usize,
}

/// Records every expense of `batch` (idempotently, for `api`, the API it was validated for)
/// and submits those not yet created in Codat, starting no create that could outlast
/// `deadline`.
pub async fn approve(
    batch: &ApprovalBatch,
    api: CodatApi,
    store: &Store,
    receipts: &ReceiptStore,
    codat: &CodatClient,
    deadline: Option<Instant>,
) -> Result<Approved, IntakeError> {
    let company = batch.company_id;
    let ids: Vec<ExpenseId> = batch.expenses.iter().map(|e| e.id()).collect();

    // A re-post of the same expense is a replay; the same id with other content is refused
    // before anything is written.
    let known = store.get_expenses(company, &ids).await?;
    check_same_content(batch, &known)?;

    // Receipts go to S3 a few at a time: one by one, a batch of 100 spent seconds here.
    let new_approvals: Vec<_> =
        batch.expenses.iter().filter(|a| !known.iter().any(|k| k.expense_id == a.id())).collect();
    // (Futures built first: a stream's closure over borrowed items is not `Send` enough for
    // the runtime's handler.)
    let puts: Vec<_> = new_approvals.iter().map(|approved| store_receipt(receipts, company, approved)).collect();
    let stored_receipts: Vec<Option<ReceiptRef>> = stream::iter(puts)
        .buffered(RECEIPTS_AT_ONCE)
        .try_collect()
        .await
        .map_err(|e| IntakeError::Receipts(e.to_string()))?;
    let now = Utc::now();
    let mut fresh: Vec<Expense> = new_approvals
        .into_iter()
        .zip(stored_receipts)
        .map(|(approved, receipt)| Expense {
            company_id: company,
            expense_id: approved.id(),
            status: Status::Approved,
            api,
            entry: approved.entry.clone(),
            receipt,
            fingerprint: approved.fingerprint(),
            dataset_id: None,
            sync_id: None,
            attachment_id: None,
            failure: None,
            note: None,
            approved_at: now,
            updated_at: now,
        })
        .collect();
    // All or nothing: a concurrent approval that created some of them first is checked like
    // a replay (409 before anything is written), and the rest go in without them.
    let mut stored = known;
    for _ in 0..=batch.expenses.len() {
        let inserted = store.insert_expenses(&fresh).await?;
        if inserted.existing.is_empty() {
            stored.append(&mut fresh);
            break;
        }
        let raced = store.get_expenses(company, &inserted.existing).await?;
        check_same_content(batch, &raced)?;
        fresh.retain(|e| !raced.iter().any(|r| r.expense_id == e.expense_id));
        stored.extend(raced);
    }
    if !fresh.is_empty() {
        return Err(IntakeError::Store(StoreError::Dynamo("the approval kept racing other approvals".into())));
    }

    // From here on the approval is stored: whatever fails, the sweep carries it on.
    let submission =
        submit_approved(store, codat, company, &stored, deadline).await.map_err(IntakeError::Interrupted)?;
    let mut current = store.get_expenses(company, &ids).await.map_err(IntakeError::Interrupted)?;
    current.sort_by_key(|e| ids.iter().position(|id| *id == e.expense_id));
    Ok(Approved { expenses: current, unresolved: submission.unresolved, deferred: submission.deferred })
}

async fn store_receipt(
    receipts: &ReceiptStore,
    company: CompanyId,
    approved: &ApprovedExpense,
) -> Result<Option<ReceiptRef>, ReceiptError> {
    match &approved.receipt {
        Some(receipt) => receipts.put(company, approved.id(), receipt).await.map(Some),
        None => Ok(None),
    }
}

fn check_same_content(batch: &ApprovalBatch, stored: &[Expense]) -> Result<(), IntakeError> {
    for approved in &batch.expenses {
        if let Some(existing) = stored.iter().find(|e| e.expense_id == approved.id()) {
            if !existing.is_approval_of(approved) {
                return Err(IntakeError::Conflict {
                    field: existing.difference_from(approved),
                    expense_id: approved.id(),
                });
            }
        }
    }
    Ok(())
}
