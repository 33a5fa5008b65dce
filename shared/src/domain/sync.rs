//! Datasets, syncs and the per-company sync lock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CodatApi, CompanyId, DatasetId, ExpenseId, SyncId};

/// A sync Codat says has finished, successfully or not: what a verified webhook tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncNotice {
    pub company_id: CompanyId,
    pub sync_id: SyncId,
    pub successful: bool,
}

/// A verified webhook delivery as stored: its id de-duplicates Codat's redeliveries, and its
/// insert on the table's stream is where the sync's outcome is recorded, so the webhook itself
/// answers at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedNotice {
    pub webhook_id: String,
    pub company_id: CompanyId,
    pub sync_id: SyncId,
    pub successful: bool,
    pub received_at: DateTime<Utc>,
}

/// What Codat answered a create with: a v1 dataset to sync later, or (current API) the sync
/// Codat already queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Dataset(DatasetId),
    Sync(SyncId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DatasetStatus {
    /// Created in Codat, waiting for a sync.
    Pending,
    /// Included in a sync.
    Syncing,
    /// Codat refused to sync it; its expenses carry the reason.
    Rejected,
}

/// A dataset Codat accepted: up to 50 of our expenses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub company_id: CompanyId,
    pub dataset_id: DatasetId,
    pub expense_ids: Vec<ExpenseId>,
    pub status: DatasetStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<SyncId>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncState {
    /// Codat accepted the sync; we wait for the webhook (or the sweep's poll).
    Running,
    /// Every transaction of the sync has a recorded outcome.
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    pub company_id: CompanyId,
    pub sync_id: SyncId,
    /// The API that created the sync; v1 syncs hold the company's sync lock.
    #[serde(default = "CodatApi::legacy")]
    pub api: CodatApi,
    /// The v1 datasets it syncs (none on the current API).
    #[serde(default)]
    pub dataset_ids: Vec<DatasetId>,
    pub expense_ids: Vec<ExpenseId>,
    pub state: SyncState,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Who holds a company's sync lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum LockHolder {
    /// An invocation that is initiating a sync (its random token).
    Initiation(Uuid),
    /// A running sync: released when its outcome is recorded.
    Sync(SyncId),
}

/// One sync per company at a time: the lock item exists while a sync is being initiated or runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncLock {
    pub company_id: CompanyId,
    pub holder: LockHolder,
    pub acquired_at: DateTime<Utc>,
    /// A holder that died (a Lambda timeout) loses the lock after this instant (epoch seconds,
    /// so DynamoDB compares it as a number).
    #[serde(with = "chrono::serde::ts_seconds")]
    pub expires_at: DateTime<Utc>,
}
