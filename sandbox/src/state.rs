use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::Config;

/// One request the sandbox received.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// The JSON body, when there was one.
    pub body: Option<Value>,
    pub attachment: Option<AttachmentLog>,
}

/// What an attachment upload carried.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentLog {
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
    pub sha256: String,
    pub bytes_base64: String,
}

#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    pub path_contains: String,
    pub status: u16,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Pending,
    Completed,
    ValidationError,
}

impl TxnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Pending => "Pending",
            TxnStatus::Completed => "Completed",
            TxnStatus::ValidationError => "ValidationError",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Txn {
    pub body: Value,
    pub status: TxnStatus,
    pub message: Option<String>,
    pub sync_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub items: Vec<String>,
    pub sync_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SyncRun {
    pub dataset_ids: Vec<String>,
    pub done: bool,
    pub started: chrono::DateTime<chrono::Utc>,
    pub finished: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Default)]
pub struct Company {
    pub transactions: HashMap<String, Txn>,
    pub datasets: HashMap<String, Dataset>,
    pub syncs: BTreeMap<String, SyncRun>,
    pub running_syncs: usize,
    pub max_running_syncs: usize,
    pub attachments: u64,
}

impl Company {
    pub fn sync_transactions(&self, sync_id: &str) -> Vec<String> {
        let Some(sync) = self.syncs.get(sync_id) else { return Vec::new() };
        sync.dataset_ids.iter().filter_map(|d| self.datasets.get(d)).flat_map(|d| d.items.iter().cloned()).collect()
    }
}

#[derive(Debug, Default)]
pub struct Inner {
    pub companies: HashMap<String, Company>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
    pub webhooks_to_drop: HashMap<String, u32>,
    /// Transaction ids left out of sync transaction listings (Codat not reporting them).
    pub unreported: std::collections::HashSet<String>,
    pub webhooks_sent: u64,
}

pub struct Shared {
    pub config: Config,
    pub inner: Mutex<Inner>,
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        Self { config, inner: Mutex::new(Inner::default()), http: reqwest::Client::new() }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
