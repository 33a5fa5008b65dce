//! DynamoDB persistence: one table, every state change a conditional write.
//!
//! | item            | pk             | sk                 | notes                                  |
//! |-----------------|----------------|--------------------|----------------------------------------|
//! | expense         | `COMPANY#{c}`  | `EXPENSE#{e}`      | `status` drives the stream triggers;   |
//! |                 |                |                    | approved/claimed ones are in `sweep`   |
//! | dataset (v1)    | `COMPANY#{c}`  | `DATASET#{d}`      | pending ones are in the `sweep` index  |
//! | sync            | `COMPANY#{c}`  | `SYNC#{s}`         | running ones are in the `sweep` index  |
//! | sync lock (v1)  | `COMPANY#{c}`  | `LOCK`             | exists while a sync is initiated/runs  |
//! | webhook receipt | `WEBHOOK#{id}` | `WEBHOOK`          | de-duplicates deliveries, expires      |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{
    CodatApi, CompanyId, Dataset, DatasetId, DatasetStatus, Event, Expense, ExpenseId, LockHolder, Status, Sync,
    SyncId, SyncLock, SyncState, Transition,
};

/// Name of the sparse index listing what the schedule sweep must look at.
pub const SWEEP_INDEX: &str = "sweep";
const SWEEP_PENDING_DATASET: &str = "pendingDataset";
const SWEEP_RUNNING_SYNC: &str = "runningSync";
/// Expenses not yet in a dataset (Codat was unavailable): the sweep submits them.
const SWEEP_APPROVED_EXPENSE: &str = "approvedExpense";
/// Expenses claimed for a Codat call: a claim that outlives any invocation was abandoned.
const SWEEP_CLAIMED_EXPENSE: &str = "claimedExpense";
/// DynamoDB's limit on items in one transaction.
const MAX_TRANSACT_ITEMS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold: another invocation got there first.
    #[error("conditional write lost: {0}")]
    Conflict(String),
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    #[error("stored item unreadable: {0}")]
    Corrupt(String),
}

fn dynamo<E: std::error::Error + 'static, R: std::fmt::Debug>(err: SdkError<E, R>) -> StoreError {
    StoreError::Dynamo(DisplayErrorContext(err).to_string())
}

/// The outcome of inserting a batch of new expenses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    pub created: Vec<ExpenseId>,
    pub existing: Vec<ExpenseId>,
}

pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
    requests: AtomicU64,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn company_pk(company: CompanyId) -> String {
    format!("COMPANY#{company}")
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn expense_key(company: CompanyId, expense: ExpenseId) -> HashMap<String, AttributeValue> {
    key(company_pk(company), format!("EXPENSE#{expense}"))
}

fn dataset_key(company: CompanyId, dataset: DatasetId) -> HashMap<String, AttributeValue> {
    key(company_pk(company), format!("DATASET#{dataset}"))
}

fn sync_key(company: CompanyId, sync: SyncId) -> HashMap<String, AttributeValue> {
    key(company_pk(company), format!("SYNC#{sync}"))
}

fn lock_key(company: CompanyId) -> HashMap<String, AttributeValue> {
    key(company_pk(company), "LOCK".to_string())
}

/// Fixed-width UTC time, so the sweep index's string order is time order.
fn sweep_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn to_attribute<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("domain values serialize")
}

fn expense_item(expense: &Expense) -> HashMap<String, AttributeValue> {
    let mut item = item(expense, expense_key(expense.company_id, expense.expense_id), "expense");
    if let Some(partition) = sweep_partition(expense.status) {
        item.insert("sweepPk".into(), s(partition));
        item.insert("sweepSk".into(), s(format!("{}#{}", sweep_time(expense.updated_at), expense.company_id)));
    }
    item
}

/// Which sweep an expense in `status` waits for, if any.
fn sweep_partition(status: Status) -> Option<&'static str> {
    match status {
        Status::Approved => Some(SWEEP_APPROVED_EXPENSE),
        Status::Submitting | Status::Uploading => Some(SWEEP_CLAIMED_EXPENSE),
        _ => None,
    }
}

/// Serializes a record and adds its keys and kind.
fn item<T: Serialize>(
    record: &T,
    keys: HashMap<String, AttributeValue>,
    kind: &str,
) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record).expect("domain values serialize");
    item.extend(keys);
    item.insert("kind".into(), s(kind));
    item
}

fn from_item<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), requests: AtomicU64::new(0) }
    }

    /// Builds the client from shared config and `TABLE_NAME`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, String> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), crate::required_env("TABLE_NAME")?))
    }

    /// DynamoDB requests sent so far (for the benchmarks).
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    // ---- expenses ----

    pub async fn get_expense(&self, company: CompanyId, expense: ExpenseId) -> Result<Option<Expense>, StoreError> {
        self.count(1);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(expense_key(company, expense)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(from_item).transpose()
    }

    /// Reads many expenses (strongly consistent), in no particular order; missing ones are absent.
    pub async fn get_expenses(&self, company: CompanyId, ids: &[ExpenseId]) -> Result<Vec<Expense>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let mut keys: Vec<_> = chunk.iter().map(|id| expense_key(company, *id)).collect();
            while !keys.is_empty() {
                self.count(1);
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Dynamo(e.to_string()))?;
                let out =
                    self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(dynamo)?;
                for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    found.push(from_item(item)?);
                }
                if let Some(mut rest) = out.unprocessed_keys {
                    if let Some(again) = rest.remove(&self.table) {
                        keys = again.keys;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Puts each expense unless one with its id exists. Each put is its own conditional write,
    /// so concurrent approvals of the same expense create it exactly once.
    pub async fn insert_expenses(&self, expenses: &[Expense]) -> Result<Inserted, StoreError> {
        let mut inserted = Inserted::default();
        for expense in expenses {
            self.count(1);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(expense_item(expense)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match result {
                Ok(_) => inserted.created.push(expense.expense_id),
                Err(err) if is_condition_failure(&err) => inserted.existing.push(expense.expense_id),
                Err(err) => return Err(dynamo(err)),
            }
        }
        Ok(inserted)
    }

    /// Applies one transition as one conditional write (`status` must still be `from`).
    pub async fn apply(&self, expense: &Expense, transition: &Transition) -> Result<(), StoreError> {
        self.count(1);
        let update = expense_update(expense.company_id, expense.expense_id, transition, Utc::now());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.expression)
            .condition_expression(update.condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => {
                Err(StoreError::Conflict(format!("expense {} is no longer {}", expense.expense_id, transition.from)))
            }
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Applies the same event to several expenses, all or none (at most 100).
    pub async fn apply_all(&self, moves: &[(&Expense, Transition)]) -> Result<(), StoreError> {
        let now = Utc::now();
        let items = moves
            .iter()
            .map(|(expense, transition)| {
                expense_update(expense.company_id, expense.expense_id, transition, now).into_transact(&self.table)
            })
            .collect();
        self.transact(items).await
    }

    /// Expenses still `approved` since before `before` (Codat was unavailable at intake).
    pub async fn stale_approved_expenses(&self, before: DateTime<Utc>) -> Result<Vec<Expense>, StoreError> {
        let items = self.sweep(SWEEP_APPROVED_EXPENSE, Some(sweep_time(before))).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Expenses claimed (`submitting`/`uploading`) since before `before`.
    pub async fn stale_claimed_expenses(&self, before: DateTime<Utc>) -> Result<Vec<Expense>, StoreError> {
        let items = self.sweep(SWEEP_CLAIMED_EXPENSE, Some(sweep_time(before))).await?;
        items.into_iter().map(from_item).collect()
    }

    // ---- datasets ----

    /// Records a dataset Codat created and moves its expenses to `submitted`, atomically.
    pub async fn record_dataset(&self, dataset: &Dataset, moves: &[(&Expense, Transition)]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut dataset_item = item(dataset, dataset_key(dataset.company_id, dataset.dataset_id), "dataset");
        dataset_item.insert("sweepPk".into(), s(SWEEP_PENDING_DATASET));
        dataset_item.insert("sweepSk".into(), s(format!("{}#{}", sweep_time(dataset.created_at), dataset.company_id)));
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
        let mut datasets: Vec<Dataset> = self
            .query_prefix(company, "DATASET#")
            .await?
            .into_iter()
            .filter(|d: &Dataset| d.status == DatasetStatus::Pending)
            .collect();
        datasets.sort_by_key(|d| d.created_at);
        Ok(datasets)
    }

    /// Companies that have a dataset waiting for a sync (from the sparse sweep index).
    pub async fn companies_with_pending_datasets(&self) -> Result<Vec<CompanyId>, StoreError> {
        let items = self.sweep(SWEEP_PENDING_DATASET, None).await?;
        let mut companies: Vec<CompanyId> =
            items.into_iter().map(from_item::<Dataset>).map(|d| d.map(|d| d.company_id)).collect::<Result<_, _>>()?;
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

    /// Moves a dataset out of `pending` (and out of the sweep index), if it still is pending.
    fn leave_pending(
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
            .expression_attribute_values(":to", to_attribute(&to))
            .expression_attribute_values(":pending", to_attribute(&DatasetStatus::Pending));
        update = match sync {
            Some(sync) => update
                .update_expression("SET #status = :to, syncId = :sync REMOVE sweepPk, sweepSk")
                .expression_attribute_values(":sync", to_attribute(&sync)),
            None => update.update_expression("SET #status = :to REMOVE sweepPk, sweepSk"),
        };
        TransactWriteItem::builder().update(update.build().expect("update is complete")).build()
    }

    // ---- the per-company sync lock ----

    /// Takes the company's sync lock for an initiation, unless it is held and not expired.
    pub async fn acquire_lock(&self, company: CompanyId, token: Uuid, lease: Duration) -> Result<bool, StoreError> {
        let now = Utc::now();
        let lock = SyncLock {
            company_id: company,
            holder: LockHolder::Initiation(token),
            acquired_at: now,
            expires_at: now + lease,
        };
        self.count(1);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(&lock, lock_key(company), "lock")))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(dynamo(err)),
        }
    }

    pub async fn get_lock(&self, company: CompanyId) -> Result<Option<SyncLock>, StoreError> {
        self.get(lock_key(company)).await
    }

    /// Releases the lock if `holder` still holds it.
    pub async fn release_lock(&self, company: CompanyId, holder: LockHolder) -> Result<bool, StoreError> {
        self.count(1);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(lock_key(company)))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", to_attribute(&holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(dynamo(err)),
        }
    }

    fn release_lock_item(&self, company: CompanyId, holder: LockHolder) -> TransactWriteItem {
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(lock_key(company)))
                    .condition_expression("holder = :holder")
                    .expression_attribute_values(":holder", to_attribute(&holder))
                    .build()
                    .expect("delete is complete"),
            )
            .build()
    }

    // ---- syncs ----

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
        sync_item.insert("sweepPk".into(), s(SWEEP_RUNNING_SYNC));
        sync_item.insert("sweepSk".into(), s(format!("{}#{}", sweep_time(sync.started_at), sync.company_id)));
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

    /// Marks the sync finished and (v1) releases the company's lock, atomically. Returns false
    /// when another invocation already did (a duplicate webhook racing the sweep).
    pub async fn finish_sync(&self, sync: &Sync) -> Result<bool, StoreError> {
        let (company, api, sync) = (sync.company_id, sync.api, sync.sync_id);
        let finished = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(sync_key(company, sync)))
                    .update_expression("SET #state = :finished, finishedAt = :now REMOVE sweepPk, sweepSk")
                    .condition_expression("#state = :running")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":finished", to_attribute(&SyncState::Finished))
                    .expression_attribute_values(":running", to_attribute(&SyncState::Running))
                    .expression_attribute_values(":now", to_attribute(&Utc::now()))
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

    // ---- webhook de-duplication ----

    pub async fn webhook_seen(&self, webhook_id: &str) -> Result<bool, StoreError> {
        self.count(1);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("WEBHOOK#{webhook_id}"), "WEBHOOK".into())))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.item.is_some())
    }

    /// Remembers a processed delivery for a week (Codat retries for up to about 32 hours).
    pub async fn remember_webhook(&self, webhook_id: &str, sync: SyncId) -> Result<(), StoreError> {
        self.count(1);
        let expires = (Utc::now() + Duration::days(7)).timestamp();
        let mut record = key(format!("WEBHOOK#{webhook_id}"), "WEBHOOK".into());
        record.insert("kind".into(), s("webhook"));
        record.insert("syncId".into(), s(sync.to_string()));
        record.insert("ttl".into(), AttributeValue::N(expires.to_string()));
        self.client.put_item().table_name(&self.table).set_item(Some(record)).send().await.map_err(dynamo)?;
        Ok(())
    }

    // ---- helpers ----

    async fn get<T: DeserializeOwned>(&self, key: HashMap<String, AttributeValue>) -> Result<Option<T>, StoreError> {
        self.count(1);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(from_item).transpose()
    }

    async fn query_prefix<T: DeserializeOwned>(&self, company: CompanyId, prefix: &str) -> Result<Vec<T>, StoreError> {
        let mut results = Vec::new();
        let mut start = None;
        loop {
            self.count(1);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(company_pk(company)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            for item in out.items.unwrap_or_default() {
                results.push(from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(results);
            }
        }
    }

    async fn sweep(
        &self,
        partition: &str,
        before: Option<String>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut results = Vec::new();
        let mut start = None;
        loop {
            self.count(1);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .expression_attribute_values(":pk", s(partition))
                .set_exclusive_start_key(start);
            query = match &before {
                Some(before) => query
                    .key_condition_expression("sweepPk = :pk AND sweepSk < :before")
                    .expression_attribute_values(":before", s(before.clone())),
                None => query.key_condition_expression("sweepPk = :pk"),
            };
            let out = query.send().await.map_err(dynamo)?;
            results.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(results);
            }
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.count(1);
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                if let SdkError::ServiceError(service) = &err {
                    if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() {
                        let reasons: Vec<String> = cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_string())
                            .collect();
                        if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                            return Err(StoreError::Conflict(format!("transaction cancelled: {}", reasons.join(","))));
                        }
                    }
                }
                Err(dynamo(err))
            }
        }
    }
}

/// The conditional update that makes one transition: `status` must still be `from`.
struct ExpenseUpdate {
    key: HashMap<String, AttributeValue>,
    expression: String,
    condition: &'static str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl ExpenseUpdate {
    fn into_transact(self, table: &str) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(self.expression)
            .condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .expect("update is complete");
        TransactWriteItem::builder().update(update).build()
    }
}

fn expense_update(
    company: CompanyId,
    expense: ExpenseId,
    transition: &Transition,
    now: DateTime<Utc>,
) -> ExpenseUpdate {
    let mut set = vec!["#status = :to", "updatedAt = :now"];
    let mut remove: Vec<&str> = Vec::new();
    let mut values = HashMap::from([
        (":to".to_string(), to_attribute(&transition.to)),
        (":from".to_string(), to_attribute(&transition.from)),
        (":now".to_string(), to_attribute(&now)),
    ]);
    match &transition.event {
        Event::DatasetCreated { dataset_id } => {
            set.push("datasetId = :dataset");
            values.insert(":dataset".into(), to_attribute(dataset_id));
        }
        Event::SyncStarted { sync_id } | Event::SyncCreated { sync_id } => {
            set.push("syncId = :sync");
            values.insert(":sync".into(), to_attribute(sync_id));
        }
        Event::ReceiptUploaded { attachment_id } => {
            set.push("attachmentId = :attachment");
            values.insert(":attachment".into(), s(attachment_id.clone()));
        }
        Event::SubmissionRejected(failure)
        | Event::SubmissionUnconfirmed(failure)
        | Event::SyncRejected(failure)
        | Event::TransactionFailed(failure)
        | Event::UploadRejected(failure)
        | Event::TransactionUnreported(failure)
        | Event::UploadUnconfirmed(failure) => {
            set.push("failure = :failure");
            values.insert(":failure".into(), to_attribute(failure));
        }
        Event::SubmissionAbandoned | Event::UploadAbandoned => remove.push("failure"),
        Event::SubmissionStarted | Event::TransactionCompleted | Event::UploadStarted => {}
    }
    match sweep_partition(transition.to) {
        Some(partition) => {
            set.push("sweepPk = :sweepPk, sweepSk = :sweepSk");
            values.insert(":sweepPk".into(), s(partition));
            values.insert(":sweepSk".into(), s(format!("{}#{company}", sweep_time(now))));
        }
        None => remove.push("sweepPk, sweepSk"),
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    ExpenseUpdate {
        key: expense_key(company, expense),
        expression,
        condition: "#status = :from",
        names: HashMap::from([("#status".to_string(), "status".to_string())]),
        values,
    }
}

fn is_condition_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

/// The attributes of a table item that say what it is: enough to route a stream record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct ItemKeys {
    pub pk: String,
    pub sk: String,
    pub kind: Option<String>,
    pub status: Option<String>,
}

impl ItemKeys {
    pub fn company(&self) -> Option<CompanyId> {
        self.pk.strip_prefix("COMPANY#")?.parse().ok()
    }

    pub fn expense(&self) -> Option<ExpenseId> {
        self.sk.strip_prefix("EXPENSE#")?.parse().ok()
    }
}
