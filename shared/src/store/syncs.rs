//! Sync items: running ones are in the sweep index until their outcome is recorded.

use super::expenses::expense_update;
use super::*;

impl Store {
    /// Records a sync Codat accepted, hands the lock from the initiation to the sync and marks
    /// its datasets syncing: one transaction, so no dataset is ever in two syncs.
    pub async fn start_sync(&self, sync: &Sync, token: Uuid, lease: Duration) -> Result<(), StoreError> {
        let company = sync.company_id;
        if sync.dataset_ids.len() + 2 > MAX_TRANSACT_ITEMS {
            return Err(StoreError::Dynamo(format!("{} datasets do not fit one transaction", sync.dataset_ids.len())));
        }
        let now = Utc::now();
        let mut items = vec![
            self.put_new_sync(sync),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(lock_key(company)))
                        .update_expression("SET holder = :sync, expiresAt = :expires")
                        .condition_expression("holder = :token")
                        .expression_attribute_values(":sync", to_attribute(&LockHolder::Sync(sync.sync_id)))
                        .expression_attribute_values(":token", to_attribute(&LockHolder::Initiation(token)))
                        .expression_attribute_values(
                            ":expires",
                            AttributeValue::N((now + lease).timestamp().to_string()),
                        )
                        .build()
                        .expect("update is complete"),
                )
                .build(),
        ];
        items.extend(
            sync.dataset_ids
                .iter()
                .map(|dataset| self.leave_pending(company, *dataset, DatasetStatus::Syncing, Some(sync.sync_id))),
        );
        self.transact(items).await
    }

    /// Records a sync Codat's current API created (and queued) for the claimed expenses, and
    /// moves them to `syncing`, atomically. No lock: Codat queues a company's syncs itself.
    pub async fn record_created_sync(&self, sync: &Sync, moves: &[(&Expense, Transition)]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut items = vec![self.put_new_sync(sync)];
        items.extend(moves.iter().map(|(expense, transition)| {
            expense_update(expense.company_id, expense.expense_id, transition, now).into_transact(&self.table)
        }));
        self.transact(items).await
    }

    /// A new running sync, listed in the sweep index until it finishes.
    fn put_new_sync(&self, sync: &Sync) -> TransactWriteItem {
        let mut sync_item = item(sync, sync_key(sync.company_id, sync.sync_id), "sync");
        sync_item.extend(sweep_entry(SWEEP_RUNNING_SYNC, sync.company_id, sync.started_at));
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(sync_item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .expect("put is complete"),
            )
            .build()
    }

    pub async fn get_sync(&self, company: CompanyId, sync: SyncId) -> Result<Option<Sync>, StoreError> {
        self.get(sync_key(company, sync)).await
    }

    /// Syncs still waiting for their outcome that started before `started_before`.
    pub async fn running_syncs(&self, started_before: DateTime<Utc>) -> Result<Vec<Sync>, StoreError> {
        let items = self.sweep(SWEEP_RUNNING_SYNC, Some(sweep_time(started_before))).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Marks the sync finished (it expires a while later) and (v1) releases the company's lock,
    /// atomically. Returns false when another invocation already did (a duplicate webhook racing
    /// the sweep).
    pub async fn finish_sync(&self, sync: &Sync) -> Result<bool, StoreError> {
        let (company, api, sync) = (sync.company_id, sync.api, sync.sync_id);
        let now = Utc::now();
        let finished = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(sync_key(company, sync)))
                    .update_expression(format!(
                        "SET #state = :finished, finishedAt = :now, #ttl = :ttl REMOVE {LEAVE_SWEEP}"
                    ))
                    .condition_expression("#state = :running")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":finished", to_attribute(&SyncState::Finished))
                    .expression_attribute_values(":running", to_attribute(&SyncState::Running))
                    .expression_attribute_values(":now", to_attribute(&now))
                    .expression_attribute_values(":ttl", expires_after_finish(now))
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                    .build()
                    .expect("update is complete"),
            )
            .build();
        // Only v1 syncs take the company's lock; the current API queues syncs itself.
        let lock_held =
            api == CodatApi::V1 && self.get_lock(company).await?.is_some_and(|l| l.holder == LockHolder::Sync(sync));
        let mut items = vec![finished];
        if lock_held {
            items.push(self.release_lock_item(company, LockHolder::Sync(sync)));
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }
}
