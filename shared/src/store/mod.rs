//! DynamoDB persistence: one table, every state change a conditional write.
//!
//! | item            | pk             | sk                 | notes                                  |
//! |-----------------|----------------|--------------------|----------------------------------------|
//! | expense         | `COMPANY#{c}`  | `EXPENSE#{e}`      | `status` drives the stream triggers;   |
//! |                 |                |                    | approved/claimed/synced: in `sweep`    |
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

/// Name of the sparse index listing what the schedule sweep must look at.
pub const SWEEP_INDEX: &str = "sweep";
const SWEEP_PENDING_DATASET: &str = "pendingDataset";
const SWEEP_RUNNING_SYNC: &str = "runningSync";
/// Expenses not yet in a dataset (Codat was unavailable): the sweep submits them.
const SWEEP_APPROVED_EXPENSE: &str = "approvedExpense";
/// Expenses claimed for a Codat call: a claim that outlives any invocation was abandoned.
const SWEEP_CLAIMED_EXPENSE: &str = "claimedExpense";
/// Expenses waiting for their upload: one whose stream record was lost or exhausted its
/// retries is requeued by the sweep.
const SWEEP_SYNCED_EXPENSE: &str = "syncedExpense";
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
