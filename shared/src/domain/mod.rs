//! The expense domain: identifiers, approvals and the expense state machine.

mod approval;
mod expense;
mod ids;
mod sync;

pub use approval::{ApprovalBatch, ApprovedExpense, Receipt, ValidationError, MAX_BATCH, MAX_RECEIPT_BYTES};
pub use expense::{Event, Expense, Failure, InvalidTransition, ReceiptRef, Stage, Status, Transition};
pub use ids::{CompanyId, DatasetId, ExpenseId, SyncId};
pub use sync::{Dataset, DatasetStatus, LockHolder, Sync, SyncLock, SyncState};

/// Codat accepts at most this many transactions in one dataset.
pub const MAX_DATASET_ITEMS: usize = 50;
