//! The calls only the current API has: the creates of each kind, and the company-wide sync statuses a
//! client reads to find out whether a create whose answer was lost took effect.

use reqwest::StatusCode;

use super::models::*;
use crate::codat::http::Effect;
use crate::codat::syncs::CompanySyncStatus;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CompanyId, Entry, EntryKind, SyncId, Transaction, Transfer};

/// The current API's calls, over the shared transport: `codat.expenses().create(..)`.
pub struct Expenses<'a>(pub(crate) &'a CodatClient);

impl Expenses<'_> {
    /// Creates 1 to 50 entries of one kind with the kind's own endpoint; Codat answers the sync
    /// it queued for them. A transfer is one PUT by its id, so it comes alone.
    pub async fn create(&self, company: CompanyId, entries: &[&Entry]) -> Result<SyncId, CodatError> {
        let kind = entries.first().map_or(EntryKind::Expense, |e| e.kind());
        debug_assert!(entries.iter().all(|e| e.kind() == kind), "one kind per create");
        match kind {
            EntryKind::Expense => {
                let body: Vec<ExpenseTransaction> = transactions(entries).map(Into::into).collect();
                self.post(company, "expense-transactions", &body).await
            }
            EntryKind::Reimbursable => {
                let body: Vec<ReimbursableExpenseTransaction> = transactions(entries).map(Into::into).collect();
                self.post(company, "reimbursable-expense-transactions", &body).await
            }
            EntryKind::Adjustment => {
                let body: Vec<AdjustmentTransactionRequest> = entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Adjustment(a) => Some(a.into()),
                        _ => None,
                    })
                    .collect();
                self.post(company, "adjustment-transactions", &body).await
            }
            EntryKind::Transfer => match entries {
                [Entry::Transfer(transfer)] => self.put_transfer(company, transfer).await,
                _ => unreachable!("a transfer is created alone"),
            },
        }
    }

    /// `POST .../{path}` with a bare array; every create answers `{syncId}` with 200.
    async fn post<T: serde::Serialize>(
        &self,
        company: CompanyId,
        path: &str,
        body: &[T],
    ) -> Result<SyncId, CodatError> {
        let codat = self.0;
        let url = codat.url(company, path);
        let response: CreateExpenseResponse =
            codat.send(Effect::CreatesOnce, &[StatusCode::OK], || codat.http.post(&url).json(body)).await?;
        Ok(response.sync_id)
    }

    /// `PUT .../transfer-transactions/{transactionId}`. Codat creates *or updates* the transfer
    /// by its id, so this is only ever sent for a transfer not yet created (a claimed
    /// `submitting` expense), and a lost answer is looked up, never sent again.
    pub async fn put_transfer(&self, company: CompanyId, transfer: &Transfer) -> Result<SyncId, CodatError> {
        let codat = self.0;
        let url = codat.url(company, &format!("transfer-transactions/{}", transfer.id));
        let body = TransferTransactionRequest::from(transfer);
        let response: TransferTransactionResponse =
            codat.send(Effect::Creates, &[StatusCode::OK], || codat.http.put(&url).json(&body)).await?;
        Ok(response.sync_id)
    }

    /// `GET .../syncs/latest/status`; `None` when the company has no sync yet (404).
    pub async fn latest_sync_status(&self, company: CompanyId) -> Result<Option<CompanySyncStatus>, CodatError> {
        let codat = self.0;
        let url = codat.url(company, "syncs/latest/status");
        match codat.send(Effect::ReadOnly, &[StatusCode::OK], || codat.http.get(&url)).await {
            Ok(status) => Ok(Some(status)),
            Err(CodatError::Rejected { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET .../syncs/list/status`: every sync of the company.
    pub async fn list_sync_statuses(&self, company: CompanyId) -> Result<Vec<CompanySyncStatus>, CodatError> {
        let codat = self.0;
        let url = codat.url(company, "syncs/list/status");
        codat.send(Effect::ReadOnly, &[StatusCode::OK], || codat.http.get(&url)).await
    }
}

fn transactions<'a>(entries: &'a [&'a Entry]) -> impl Iterator<Item = &'a Transaction> {
    entries.iter().filter_map(|e| e.as_transaction())
}
