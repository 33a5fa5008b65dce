//! DynamoDB persistence: one table, every state change a conditional write.
//!
//! | item            | pk             | sk                 | notes                                  |
//! |-----------------|----------------|--------------------|----------------------------------------|
//! | expense         | `COMPANY#{c}`  | `EXPENSE#{e}`      | `status` drives the stream triggers;   |
//! |                 |                |                    | approved/claimed/synced: in the sweep  |
//! | dataset (v1)    | `COMPANY#{c}`  | `DATASET#{d}`      | pending ones are in the `sweep` index  |
//! | sync            | `COMPANY#{c}`  | `SYNC#{s}`         | running ones are in the `sweep` index  |
//! | sync lock (v1)  | `COMPANY#{c}`  | `LOCK`             | exists while a sync is initiated/runs  |
//! | webhook receipt | `WEBHOOK#{id}` | `WEBHOOK`          | de-duplicates deliveries, expires      |
//!
//! One module per item kind (`expenses`, `datasets`, `lock`, `syncs`, `webhooks`); the keys,
//! serde helpers and request plumbing they share are here.

mod datasets;
mod expenses;
mod lock;
mod syncs;
mod webhooks;

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

/// Name of the sparse index listing what the schedule sweep must look at. Keys only (the
/// sweep reads each item it acts on, consistently, from the table), and each kind spread over
/// [`SWEEP_SHARDS`] partitions by company, so no one partition takes every company's writes.
pub const SWEEP_INDEX: &str = "sweepShards";
/// The index it replaces: one partition per kind, whole items (`sweepPk`/`sweepSk`). It stays
/// for one release so that entries written before the upgrade move over
/// ([`Store::migrate_legacy_sweep`]): CloudFormation adds or deletes one index per update.
pub const LEGACY_SWEEP_INDEX: &str = "sweep";
/// Partitions per kind in the sweep index; the sweep queries them all at once.
const SWEEP_SHARDS: u128 = 8;
const SWEEP_PENDING_DATASET: &str = "pendingDataset";
const SWEEP_RUNNING_SYNC: &str = "runningSync";
/// Expenses not yet in a dataset (Codat was unavailable): the sweep submits them.
const SWEEP_APPROVED_EXPENSE: &str = "approvedExpense";
/// Expenses claimed for a Codat call: a claim that outlives any invocation was abandoned.
const SWEEP_CLAIMED_EXPENSE: &str = "claimedExpense";
/// Expenses waiting for their upload: one whose stream record was lost or exhausted its
/// retries is requeued by the sweep.
const SWEEP_SYNCED_EXPENSE: &str = "syncedExpense";
/// How long a finished sync or a dataset out of `pending` stays before DynamoDB's TTL deletes
/// it: long enough to look into, far longer than Codat redelivers a webhook (about 32 hours; a
/// later one finds no sync and is acknowledged as unknown). Expenses never expire.
const RETENTION_AFTER_FINISH: Duration = Duration::days(30);
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

/// The outcome of inserting a batch of new expenses: all of them were created, or none was
/// and `existing` names those that were already there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    pub created: Vec<ExpenseId>,
    pub existing: Vec<ExpenseId>,
}

/// The outcome of [`Store::apply_each`].
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    All,
    /// Nothing was written: these positions' expenses had moved on.
    NoneFor(Vec<usize>),
    /// Nothing was written: a concurrent write cancelled the transaction; try again.
    Contended,
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

/// The sweep index partition that lists `company`'s items of `kind`.
fn sweep_shard(kind: &str, company: CompanyId) -> String {
    format!("{kind}#{}", company.as_uuid().as_u128() % SWEEP_SHARDS)
}

/// The sweep index sort key: since when the item has waited (then the company, for uniqueness
/// of order only).
fn sweep_at(at: DateTime<Utc>, company: CompanyId) -> String {
    format!("{}#{company}", sweep_time(at))
}

/// The attributes that list an item in the sweep index as `kind`, waiting since `at`.
fn sweep_entry(kind: &str, company: CompanyId, at: DateTime<Utc>) -> [(String, AttributeValue); 2] {
    [("sweepShard".into(), s(sweep_shard(kind, company))), ("sweepAt".into(), s(sweep_at(at, company)))]
}

/// Removes an item from the sweep index, and from the legacy one if it was written before.
const LEAVE_SWEEP: &str = "sweepShard, sweepAt, sweepPk, sweepSk";

/// The `ttl` attribute's value (epoch seconds) for an item finished at `at`.
fn expires_after_finish(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N((at + RETENTION_AFTER_FINISH).timestamp().to_string())
}

fn to_attribute<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("domain values serialize")
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

    /// The company's items whose sort key starts with `prefix` and whose `status` is `status`.
    /// The filter saves the bytes of the others, not reading them: what the prefix holds must stay
    /// bounded (finished items expire, see [`RETENTION_AFTER_FINISH`]).
    async fn query_prefix_in_status<T: DeserializeOwned>(
        &self,
        company: CompanyId,
        prefix: &str,
        status: AttributeValue,
    ) -> Result<Vec<T>, StoreError> {
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
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", status.clone())
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

    /// The table keys of the items listed in the sweep index as `kind`, waiting since before
    /// `before` (all of them without it). The index is eventually consistent: see [`Self::sweep`].
    async fn sweep_keys(
        &self,
        kind: &str,
        before: Option<String>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let shards = (0..SWEEP_SHARDS).map(|shard| self.sweep_shard_keys(format!("{kind}#{shard}"), before.clone()));
        let keys = futures_util::future::try_join_all(shards).await?;
        Ok(keys.into_iter().flatten().collect())
    }

    async fn sweep_shard_keys(
        &self,
        shard: String,
        before: Option<String>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            self.count(1);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .expression_attribute_values(":shard", s(shard.clone()))
                .set_exclusive_start_key(start);
            query = match &before {
                Some(before) => query
                    .key_condition_expression("sweepShard = :shard AND sweepAt < :before")
                    .expression_attribute_values(":before", s(before.clone())),
                None => query.key_condition_expression("sweepShard = :shard"),
            };
            let out = query.send().await.map_err(dynamo)?;
            for mut item in out.items.unwrap_or_default() {
                if let (Some(pk), Some(sk)) = (item.remove("pk"), item.remove("sk")) {
                    keys.push(HashMap::from([("pk".to_string(), pk), ("sk".to_string(), sk)]));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(keys);
            }
        }
    }

    /// The items listed in the sweep index as `kind` since before `before`, read from the table
    /// (strongly consistent); an item that moved on since the index saw it is left out.
    async fn sweep(
        &self,
        kind: &str,
        before: Option<String>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let keys = self.sweep_keys(kind, before.clone()).await?;
        let prefix = format!("{kind}#");
        let still_listed = |item: &HashMap<String, AttributeValue>| {
            let shard = item.get("sweepShard").and_then(|v| v.as_s().ok());
            let at = item.get("sweepAt").and_then(|v| v.as_s().ok());
            shard.is_some_and(|shard| shard.starts_with(&prefix))
                && at.is_some_and(|at| before.as_ref().is_none_or(|before| at < before))
        };
        Ok(self.batch_get(keys).await?.into_iter().filter(still_listed).collect())
    }

    /// Reads items by key (strongly consistent), 100 per request, in no particular order;
    /// missing ones are absent.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            while !pending.is_empty() {
                self.count(1);
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Dynamo(e.to_string()))?;
                let out =
                    self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(dynamo)?;
                found.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
                if let Some(unprocessed) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = unprocessed.keys;
                    if !pending.is_empty() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Moves the entries of the legacy sweep index into the sharded one (each unless it changed
    /// meanwhile), and answers how many moved. Nothing to do, cheaply, once it is empty; a table
    /// without the legacy index has none.
    pub async fn migrate_legacy_sweep(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        let mut start = None;
        loop {
            self.count(1);
            let result = self
                .client
                .scan()
                .table_name(&self.table)
                .index_name(LEGACY_SWEEP_INDEX)
                .set_exclusive_start_key(start)
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(err) if is_missing_index(&err) => return Ok(moved),
                Err(err) => return Err(dynamo(err)),
            };
            for item in out.items.unwrap_or_default() {
                if self.migrate_legacy_entry(item).await? {
                    moved += 1;
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(moved);
            }
        }
    }

    async fn migrate_legacy_entry(&self, item: HashMap<String, AttributeValue>) -> Result<bool, StoreError> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(pk), Some(sk), Some(kind), Some(at)) = (text("pk"), text("sk"), text("sweepPk"), text("sweepSk"))
        else {
            return Ok(false);
        };
        let Some(company) = pk.strip_prefix("COMPANY#").and_then(|c| c.parse::<CompanyId>().ok()) else {
            return Ok(false);
        };
        self.count(1);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("SET sweepShard = :shard, sweepAt = :at REMOVE sweepPk, sweepSk")
            .condition_expression("sweepPk = :kind AND sweepSk = :at")
            .expression_attribute_values(":shard", s(sweep_shard(&kind, company)))
            .expression_attribute_values(":kind", s(kind))
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        made(result)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self.try_transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.iter().any(|r| r == CONDITION_FAILED) => {
                Err(StoreError::Conflict(format!("transaction cancelled: {}", reasons.join(","))))
            }
            Err(reasons) => Err(StoreError::Dynamo(format!("transaction cancelled: {}", reasons.join(",")))),
        }
    }

    /// Runs one transaction: `Ok(Err(reasons))` when DynamoDB cancelled it, with each item's
    /// reason code in item order (`None` for those that would have held).
    async fn try_transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<String>>, StoreError> {
        if items.is_empty() {
            return Ok(Ok(()));
        }
        self.count(1);
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(err) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                if let SdkError::ServiceError(service) = &err {
                    if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() {
                        return Ok(Err(cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_string())
                            .collect()));
                    }
                }
                Err(dynamo(err))
            }
        }
    }
}

/// A transaction item's cancellation reason when its condition did not hold.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// A conditional write's outcome: `true` if it was made, `false` if its condition did not hold.
fn made<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_condition_failure(&err) => Ok(false),
        Err(err) => Err(dynamo(err)),
    }
}

/// DynamoDB's answer to a query of an index the table does not have.
fn is_missing_index<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(service)
        if service.err().code() == Some("ValidationException")
            && service.err().message().is_some_and(|m| m.contains("index")))
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
