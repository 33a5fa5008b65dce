//! The expense domain: identifiers, approvals and the expense state machine. Nothing here knows
//! Codat's wire models: each API's `codat/*/map.rs` translates at the client's edge.

mod approval;
mod entry;
mod expense;
pub mod fields;
mod ids;
mod sync;
mod transaction;

pub use approval::{ApprovalBatch, ApprovedExpense, IntakeRules, Receipt, ValidationError, MAX_BATCH};
pub use entry::{Adjustment, AdjustmentLine, AdjustmentType, Entry, EntryKind, Transfer, TransferSide, TransferType};
pub use expense::{Event, Expense, Failure, InvalidTransition, ReceiptRef, Stage, Status, Transition};
pub use ids::{CompanyId, DatasetId, ExpenseId, SyncId};
pub use sync::{Created, Dataset, DatasetStatus, LockHolder, ReceivedNotice, Sync, SyncLock, SyncNotice, SyncState};
pub use transaction::{
    BillTo, Contact, ContactType, Line, Ref, Tracking, TrackingDataType, Transaction, TransactionKind,
};

/// Codat takes at most this many transactions in one create call (a v1 dataset, or one
/// current-API create).
pub const MAX_CREATE_ITEMS: usize = 50;

/// Which of Codat's expense APIs a deployment creates new transactions with (`CODAT_API`).
/// Every expense and sync records the API it was created with, so a deployment that switches
/// finishes what it started on the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CodatApi {
    /// Codat's current Expenses API: the create answers the sync id itself.
    #[default]
    Expenses,
    /// Sync for Expenses v1: datasets, then one initiated sync per company at a time.
    V1,
}

impl CodatApi {
    pub fn as_str(self) -> &'static str {
        match self {
            CodatApi::Expenses => "expenses",
            CodatApi::V1 => "v1",
        }
    }

    /// Records written before the switch existed were all v1.
    pub fn legacy() -> Self {
        CodatApi::V1
    }
}

impl std::str::FromStr for CodatApi {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "expenses" => Ok(CodatApi::Expenses),
            "v1" => Ok(CodatApi::V1),
            other => Err(format!("CODAT_API is {other:?}; it must be expenses or v1")),
        }
    }
}

impl std::fmt::Display for CodatApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
