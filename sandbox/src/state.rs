//! What the sandbox remembers: companies, their transactions and syncs, the call log, faults.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::value::RawValue;
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
    /// The status actually answered (an injected fault's, when one applied).
    pub status: u16,
    /// The JSON body, when there was one (its numbers read as floats, so possibly rounded).
    pub body: Option<Value>,
    /// The exact text of a JSON body (by its Content-Type or its syntax), byte for byte, even one
    /// `body` could not read (`1e400`); absent when there was no body or it was not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    pub attachment: Option<AttachmentLog>,
    /// The status the endpoint itself gave, before an `afterEffect` fault replaced the answer:
    /// what Codat did, as opposed to what the client heard. `None` for calls refused earlier.
    #[serde(default)]
    pub handled_status: Option<u16>,
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

/// An injected fault (`POST /_sandbox/faults`).
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    pub path_contains: String,
    /// The status answered. Absent: the handler's own answer (useful with `delayMs`).
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default = "one")]
    pub times: u32,
    /// Handle the request normally first (Codat acts), then answer the fault: a lost answer.
    #[serde(default)]
    pub after_effect: bool,
    /// Sleep this long before answering (a slow or timed-out call).
    #[serde(default)]
    pub delay_ms: Option<u64>,
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

/// Which call created a transaction: it decides the sync's rule for it, and whether it can
/// take an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    Expense,
    Reimbursable,
    Transfer,
    Adjustment,
}

impl TxnKind {
    /// Codat takes no file for a transfer or an adjustment.
    pub fn takes_attachments(self) -> bool {
        matches!(self, TxnKind::Expense | TxnKind::Reimbursable)
    }
}

/// What a transfer PUT did to an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferWrite {
    /// The id was new.
    Create,
    /// The same content again: a new sync of the same transfer.
    Resend,
    /// Different content: the transfer is updated by a new sync.
    Update,
}

/// How often each kind of transfer PUT happened for one id (`/_sandbox/stats`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TransferWrites {
    pub creates: u64,
    pub resends: u64,
    pub updates: u64,
}

impl TransferWrites {
    pub fn record(&mut self, write: TransferWrite) {
        match write {
            TransferWrite::Create => self.creates += 1,
            TransferWrite::Resend => self.resends += 1,
            TransferWrite::Update => self.updates += 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Txn {
    pub body: Value,
    /// The transaction's exact JSON text: amounts are read from it, never from `body`'s floats.
    pub raw: Box<RawValue>,
    pub kind: TxnKind,
    pub status: TxnStatus,
    pub message: Option<String>,
    pub sync_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub items: Vec<String>,
    pub sync_id: Option<String>,
}

/// Which API created a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// v1: initiated from datasets, runs at once.
    V1,
    /// Current API: created with its transactions, queued per company.
    Current,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    Queued,
    Running,
    Done,
}

#[derive(Debug, Clone)]
pub struct SyncRun {
    pub kind: SyncKind,
    /// Order of creation within the company (newest is highest).
    pub seq: u64,
    pub dataset_ids: Vec<String>,
    /// Transactions created with the sync (current API).
    pub transaction_ids: Vec<String>,
    pub phase: SyncPhase,
    pub started: chrono::DateTime<chrono::Utc>,
    pub finished: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Default)]
pub struct Company {
    /// Every transaction id used, in its latest version.
    pub transactions: HashMap<String, Txn>,
    /// Versions a later transfer PUT superseded, by (syncId, transactionId): each sync keeps
    /// reporting the version it carried.
    pub earlier: HashMap<(String, String), Txn>,
    /// Transfer PUTs per transaction id.
    pub transfer_writes: BTreeMap<String, TransferWrites>,
    pub datasets: HashMap<String, Dataset>,
    pub syncs: BTreeMap<String, SyncRun>,
    pub running_syncs: usize,
    pub max_running_syncs: usize,
    pub attachments: u64,
    /// Successful creates: v1 datasets and current-API creates.
    pub create_calls: u64,
    /// Current-API syncs waiting to run, oldest first.
    pub queue: VecDeque<String>,
    /// Whether a worker is draining `queue`.
    pub worker: bool,
    /// The connections `PUT /_sandbox/companies/{companyId}/connections` set; `None`: the
    /// default Xero one (`connections.rs`).
    pub connections: Option<Vec<crate::connections::Connection>>,
    next_seq: u64,
}

impl Company {
    /// Every transaction of a sync, whichever API created it.
    pub fn sync_transactions(&self, sync_id: &str) -> Vec<String> {
        let Some(sync) = self.syncs.get(sync_id) else { return Vec::new() };
        let from_datasets =
            sync.dataset_ids.iter().filter_map(|d| self.datasets.get(d)).flat_map(|d| d.items.iter().cloned());
        from_datasets.chain(sync.transaction_ids.iter().cloned()).collect()
    }

    /// Records a new sync; returns its id.
    pub fn add_sync(&mut self, kind: SyncKind, dataset_ids: Vec<String>, transaction_ids: Vec<String>) -> String {
        let sync_id = uuid::Uuid::new_v4().to_string();
        self.next_seq += 1;
        let phase = if kind == SyncKind::V1 { SyncPhase::Running } else { SyncPhase::Queued };
        let run = SyncRun {
            kind,
            seq: self.next_seq,
            dataset_ids,
            transaction_ids,
            phase,
            started: chrono::Utc::now(),
            finished: None,
        };
        self.syncs.insert(sync_id.clone(), run);
        sync_id
    }

    /// A transaction as the sync carried it: its latest version, or one superseded since.
    pub fn txn_in(&self, sync_id: &str, id: &str) -> Option<&Txn> {
        match self.transactions.get(id) {
            Some(txn) if txn.sync_id.as_deref() == Some(sync_id) => Some(txn),
            _ => self.earlier.get(&(sync_id.to_string(), id.to_string())),
        }
    }

    pub fn txn_in_mut(&mut self, sync_id: &str, id: &str) -> Option<&mut Txn> {
        match self.transactions.get_mut(id) {
            Some(txn) if txn.sync_id.as_deref() == Some(sync_id) => Some(txn),
            _ => self.earlier.get_mut(&(sync_id.to_string(), id.to_string())),
        }
    }

    /// Stores a transaction's new version; the one it replaces stays with its own sync.
    pub fn store(&mut self, id: String, txn: Txn) {
        if let Some(previous) = self.transactions.insert(id.clone(), txn) {
            self.earlier.insert((previous.sync_id.clone().unwrap_or_default(), id), previous);
        }
    }

    /// Queues a current-API sync; `true` when the caller must start the company's worker.
    pub fn enqueue(&mut self, sync_id: String) -> bool {
        self.queue.push_back(sync_id);
        !std::mem::replace(&mut self.worker, true)
    }

    pub fn start_running(&mut self) {
        self.running_syncs += 1;
        self.max_running_syncs = self.max_running_syncs.max(self.running_syncs);
    }

    /// Syncs newest first.
    pub fn syncs_newest_first(&self) -> Vec<(&String, &SyncRun)> {
        let mut syncs: Vec<_> = self.syncs.iter().collect();
        syncs.sort_by_key(|(_, sync)| std::cmp::Reverse(sync.seq));
        syncs
    }
}

#[derive(Debug, Default)]
pub struct Inner {
    pub companies: HashMap<String, Company>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
    pub webhooks_to_drop: HashMap<String, u32>,
    /// Transaction ids left out of sync transaction listings (Codat not reporting them).
    pub unreported: HashSet<String>,
    pub webhooks_sent: u64,
    /// Bumped by a reset, so syncs started before it stop touching the new state.
    pub generation: u64,
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
