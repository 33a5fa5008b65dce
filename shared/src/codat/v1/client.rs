//! The calls only v1 has: create a dataset, initiate a sync of datasets.

use reqwest::StatusCode;

use super::models::*;
use crate::codat::http::Effect;
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CompanyId, DatasetId, SyncId, Transaction};

/// The v1 calls, over the shared transport: `codat.v1().create_expense_dataset(..)`.
pub struct V1<'a>(pub(crate) &'a CodatClient);

impl V1<'_> {
    /// `POST .../data/expense-transactions`: 1 to 50 transactions become one dataset.
    pub async fn create_expense_dataset(
        &self,
        company: CompanyId,
        transactions: &[&Transaction],
    ) -> Result<DatasetId, CodatError> {
        let codat = self.0;
        let url = codat.url(company, "data/expense-transactions");
        let items: Vec<ExpenseTransaction> = transactions.iter().map(|t| ExpenseTransaction::from(*t)).collect();
        let body = CreateExpenseRequest { items: &items };
        let response: CreateExpenseResponse =
            codat.send(Effect::CreatesOnce, &[StatusCode::OK], || codat.http.post(&url).json(&body)).await?;
        Ok(response.dataset_id)
    }

    /// `POST .../syncs`: answers 202 `SyncInitiated`.
    pub async fn initiate_sync(&self, company: CompanyId, dataset_ids: &[DatasetId]) -> Result<SyncId, CodatError> {
        let codat = self.0;
        let url = codat.url(company, "syncs");
        let body = PostSync { dataset_ids: dataset_ids.to_vec() };
        let response: SyncInitiated = codat
            .send(Effect::Creates, &[StatusCode::ACCEPTED, StatusCode::OK], || codat.http.post(&url).json(&body))
            .await?;
        Ok(response.sync_id)
    }
}
