//! v1 datasets: pending until a sync takes them, each into exactly one sync.

use super::expenses::expense_update;
use super::*;

impl Store {
    /// Records a dataset Codat created and moves its expenses to `submitted`, atomically.
    pub async fn record_dataset(&self, dataset: &Dataset, moves: &[(&Expense, Transition)]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut dataset_item = item(dataset, dataset_key(dataset.company_id, dataset.dataset_id), "dataset");
        dataset_item.extend(sweep_entry(SWEEP_PENDING_DATASET, dataset.company_id, dataset.created_at));
        let mut items = vec![TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(dataset_item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(|e| StoreError::Dynamo(e.to_string()))?,
            )
            .build()];
        items.extend(moves.iter().map(|(expense, transition)| {
            expense_update(expense.company_id, expense.expense_id, transition, now).into_transact(&self.table)
        }));
        self.transact(items).await
    }

    /// The company's datasets waiting for a sync, oldest first.
    pub async fn pending_datasets(&self, company: CompanyId) -> Result<Vec<Dataset>, StoreError> {
        let mut datasets: Vec<Dataset> =
            self.query_prefix_in_status(company, "DATASET#", to_attribute(&DatasetStatus::Pending)).await?;
        datasets.sort_by_key(|d| d.created_at);
        Ok(datasets)
    }

    /// Companies that have a dataset waiting for a sync (from the sparse sweep index).
    pub async fn companies_with_pending_datasets(&self) -> Result<Vec<CompanyId>, StoreError> {
        // The index's keys name the company; a dataset taken since the index saw it costs the
        // initiation one query that finds nothing pending.
        let keys = self.sweep_keys(SWEEP_PENDING_DATASET, None).await?;
        let mut companies: Vec<CompanyId> =
            keys.iter().filter_map(|key| key.get("pk")?.as_s().ok()?.strip_prefix("COMPANY#")?.parse().ok()).collect();
        companies.sort();
        companies.dedup();
        Ok(companies)
    }

    /// Marks datasets Codat refused to sync, and releases the lock the initiation held.
    pub async fn reject_datasets(
        &self,
        company: CompanyId,
        datasets: &[DatasetId],
        token: Uuid,
    ) -> Result<(), StoreError> {
        let mut items: Vec<TransactWriteItem> = datasets
            .iter()
            .map(|dataset| self.leave_pending(company, *dataset, DatasetStatus::Rejected, None))
            .collect();
        items.push(self.release_lock_item(company, LockHolder::Initiation(token)));
        self.transact(items).await
    }

    /// Moves a dataset out of `pending` (and out of the sweep index), if it still is pending; it
    /// expires a while later.
    pub(super) fn leave_pending(
        &self,
        company: CompanyId,
        dataset: DatasetId,
        to: DatasetStatus,
        sync: Option<SyncId>,
    ) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(dataset_key(company, dataset)))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":ttl", expires_after_finish(Utc::now()))
            .expression_attribute_values(":to", to_attribute(&to))
            .expression_attribute_values(":pending", to_attribute(&DatasetStatus::Pending));
        update = match sync {
            Some(sync) => update
                .update_expression(format!("SET #status = :to, syncId = :sync, #ttl = :ttl REMOVE {LEAVE_SWEEP}"))
                .expression_attribute_values(":sync", to_attribute(&sync)),
            None => update.update_expression(format!("SET #status = :to, #ttl = :ttl REMOVE {LEAVE_SWEEP}")),
        };
        TransactWriteItem::builder().update(update.build().expect("update is complete")).build()
    }
}
