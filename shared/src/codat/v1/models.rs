//! Request and response bodies of the v1-only calls, named exactly as
//! `Codat-Sync-Expenses-v1.yaml` names them. (Sync status, transactions and attachments are
//! shared with the current API: `codat/syncs.rs`.)

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{DatasetId, ExpenseId, SyncId};

/// `ExpenseTransaction.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionType {
    Payment,
    Refund,
    Reward,
    Chargeback,
    TransferIn,
    TransferOut,
    AdjustmentIn,
    AdjustmentOut,
}

/// `RecordRef`: an id from the company's mapping options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactType {
    Supplier,
}

/// `ContactRef`: the supplier the purchase is associated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_type: Option<ContactType>,
}

/// `ExpenseTransactionLine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseTransactionLine {
    #[serde(serialize_with = "crate::json::number")]
    pub net_amount: Decimal,
    #[serde(serialize_with = "crate::json::number")]
    pub tax_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_ref: Option<RecordRef>,
    pub account_ref: RecordRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<RecordRef>>,
}

/// `ExpenseTransaction`: one item of a dataset. Its `id` is Codat's idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseTransaction {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub issue_date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ref: Option<ContactRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub lines: Vec<ExpenseTransactionLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `CreateExpenseRequest`.
#[derive(Debug, Serialize)]
pub struct CreateExpenseRequest<'a> {
    pub items: &'a [ExpenseTransaction],
}

/// `CreateExpenseResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateExpenseResponse {
    pub dataset_id: DatasetId,
}

/// `PostSync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostSync {
    pub dataset_ids: Vec<DatasetId>,
}

/// `SyncInitiated`: the 202 answer to initiate sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInitiated {
    pub sync_id: SyncId,
}
