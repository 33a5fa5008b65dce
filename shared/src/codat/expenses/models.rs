//! Request and response bodies of the current API's own calls, named exactly as
//! `Codat-Sync-Expenses-current.yaml` names them. (Sync status, transactions and attachments
//! are shared with v1: `codat/syncs.rs`.)

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{ExpenseId, SyncId};

/// `ExpenseTransaction.type`: transfers and adjustments have endpoints of their own here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpenseTransactionType {
    Payment,
    Refund,
    Reward,
    Chargeback,
}

/// `RecordRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactType {
    Supplier,
}

/// `ExpenseContactRef`: note `type`, where v1's schema says `contactType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpenseContactRef {
    pub id: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ContactType>,
}

/// `TrackingRef.dataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackingDataType {
    TrackingCategories,
    Customers,
}

/// `TrackingRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackingRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<TrackingDataType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InvoiceToType {
    Customer,
}

/// `InvoiceTo`: the customer billed for a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceTo {
    pub id: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<InvoiceToType>,
}

/// `ExpenseTransactionLine`: only `netAmount` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpenseTransactionLine {
    #[serde(serialize_with = "crate::json::number")]
    pub net_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub tax_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<RecordRef>,
    /// `ItemRef` (QuickBooks Desktop): instead of `accountRef`, never with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<TrackingRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_to: Option<InvoiceTo>,
}

/// `ExpenseTransaction`: one item of `CreateExpenseRequest` (a bare array of 1 to 50).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpenseTransaction {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: ExpenseTransactionType,
    pub issue_date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ref: Option<ExpenseContactRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub lines: Vec<ExpenseTransactionLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_as_draft: Option<bool>,
}

/// `CreateExpenseResponse` (and `CreateReimbursableExpenseResponse`, the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateExpenseResponse {
    pub sync_id: SyncId,
}

/// `ReimbursementContactRef`: the employee, who exists as a supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReimbursementContactRef {
    pub id: String,
}

/// `ReimbursableExpenseTransactionLine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReimbursableExpenseTransactionLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(serialize_with = "crate::json::number")]
    pub net_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub tax_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_ref: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<TrackingRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_to: Option<InvoiceTo>,
}

/// One item of `ReimbursableExpenseTransactionRequest` (a bare array of 1 to 50).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReimbursableExpenseTransaction {
    pub id: ExpenseId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub contact_ref: ReimbursementContactRef,
    /// `apAccountRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap_account_ref: Option<RecordRef>,
    pub issue_date: String,
    pub due_date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub lines: Vec<ReimbursableExpenseTransactionLine>,
}

/// `TransferTransactionRequest.from.accountRef` / `.to.accountRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferAccountRef {
    pub id: String,
}

/// `TransferTransactionRequest.from` / `.to`: the amount is in that account's own currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferTransactionSide {
    pub account_ref: TransferAccountRef,
    #[serde(serialize_with = "crate::json::number")]
    pub amount: Decimal,
}

/// `TransferTransactionRequest`, the body of `PUT .../transfer-transactions/{transactionId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub date: String,
    pub from: TransferTransactionSide,
    pub to: TransferTransactionSide,
}

/// `TransferTransactionResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferTransactionResponse {
    pub sync_id: SyncId,
}

/// `TrackingRefAdjustmentTransaction.dataType`: an adjustment line may also link a supplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AdjustmentTrackingDataType {
    TrackingCategories,
    Customers,
    Suppliers,
}

/// `TrackingRefAdjustmentTransaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackingRefAdjustmentTransaction {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<AdjustmentTrackingDataType>,
}

/// `AdjustmentTransactionLine`: a positive amount is a debit, a negative one a credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentTransactionLine {
    #[serde(serialize_with = "crate::json::number")]
    pub amount: Decimal,
    pub account_ref: RecordRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<TrackingRefAdjustmentTransaction>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_to: Option<InvoiceTo>,
}

/// `AdjustmentTransactionRequest`: one item of `CreateAdjustmentRequest` (a bare array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentTransactionRequest {
    pub id: ExpenseId,
    pub date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::json::number_opt")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub lines: Vec<AdjustmentTransactionLine>,
}

/// `AdjustmentTransactionResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentTransactionResponse {
    pub sync_id: SyncId,
}
