//! What a user approved, in our own terms: the union of what Codat's two expense APIs can carry.
//! Each API's `codat/*/map.rs` turns it into that API's wire model; which fields an API accepts
//! is checked at intake ([`super::IntakeRules`]), so a stored transaction always fits the API it
//! was approved for.
//!
//! The stored form keeps the field names and order of the v1 records written before the
//! current API existed (new fields are optional and come last), so their fingerprints and
//! records read back unchanged.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ExpenseId;

/// What kind of transaction an expense is. The first eight are the types of a card
/// transaction; `Reimbursable` is an employee's expense claim (the current API only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionKind {
    Payment,
    Refund,
    Reward,
    Chargeback,
    TransferIn,
    TransferOut,
    AdjustmentIn,
    AdjustmentOut,
    Reimbursable,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Payment => "Payment",
            TransactionKind::Refund => "Refund",
            TransactionKind::Reward => "Reward",
            TransactionKind::Chargeback => "Chargeback",
            TransactionKind::TransferIn => "TransferIn",
            TransactionKind::TransferOut => "TransferOut",
            TransactionKind::AdjustmentIn => "AdjustmentIn",
            TransactionKind::AdjustmentOut => "AdjustmentOut",
            TransactionKind::Reimbursable => "Reimbursable",
        }
    }
}

/// An id from the company's mapping options (account, tax rate, bank account, item, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ref {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactType {
    Supplier,
}

/// The supplier (or, for a reimbursable expense, the employee) the transaction is against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_type: Option<ContactType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackingDataType {
    TrackingCategories,
    Customers,
    /// Adjustment lines only (`TrackingRefAdjustmentTransaction`).
    Suppliers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracking {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<TrackingDataType>,
}

/// The customer a line is billed on to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillTo {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub net_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<Tracking>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_to: Option<BillTo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Line {
    /// Net plus tax: what the line costs.
    pub fn total(&self) -> Decimal {
        self.net_amount + self.tax_amount.unwrap_or_default()
    }
}

/// One approved transaction. Its `id` is Codat's idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: TransactionKind,
    /// Codat's date-time form, e.g. `2024-05-21T00:00:00Z`.
    pub issue_date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ref: Option<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_as_draft: Option<bool>,
    /// When the employee is due to be paid (reimbursable expenses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// The accounts payable account of a reimbursable expense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap_account_ref: Option<Ref>,
}

impl Transaction {
    pub fn is_reimbursable(&self) -> bool {
        self.kind == TransactionKind::Reimbursable
    }
}
