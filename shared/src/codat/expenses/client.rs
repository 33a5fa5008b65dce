//! The calls only the current API has: the two creates, and the company-wide sync statuses a
//! client reads to find out whether a create whose answer was lost took effect.

use reqwest::StatusCode;

use super::models::*;
use crate::codat::http::Effect;
use crate::codat::syncs::CompanySyncStatus;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CompanyId, SyncId, Transaction};

/// The current API's calls, over the shared transport: `codat.expenses().create(..)`.
pub struct Expenses<'a>(pub(crate) &'a CodatClient);

impl Expenses<'_> {
    /// `POST .../expense-transactions` (card expenses) or `.../reimbursable-expense-transactions`:
    /// 1 to 50 transactions of one kind; Codat answers the sync it queued for them.
    pub async fn create(&self, company: CompanyId, transactions: &[&Transaction]) -> Result<SyncId, CodatError> {
        let codat = self.0;
        let reimbursable = transactions.first().is_some_and(|t| t.is_reimbursable());
        debug_assert!(transactions.iter().all(|t| t.is_reimbursable() == reimbursable), "one kind per create");
        let response: CreateExpenseResponse = if reimbursable {
            let url = codat.url(company, "reimbursable-expense-transactions");
            let body: Vec<ReimbursableExpenseTransaction> = transactions.iter().map(|t| (*t).into()).collect();
            codat.send(Effect::Creates, &[StatusCode::OK], || codat.http.post(&url).json(&body)).await?
        } else {
            let url = codat.url(company, "expense-transactions");
            let body: Vec<ExpenseTransaction> = transactions.iter().map(|t| (*t).into()).collect();
            codat.send(Effect::Creates, &[StatusCode::OK], || codat.http.post(&url).json(&body)).await?
        };
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
