//! Our transactions as v1's `ExpenseTransaction`, and what v1 accepts at intake.

use super::models::*;
use crate::domain::{ContactType as OurContactType, IntakeRules, Transaction, TransactionKind};

/// What Sync for Expenses v1 takes: all eight types, no current-API fields, and lines with a
/// tax amount and an account. Receipts: what every v1 integration attaches, up to 4 MB.
pub const INTAKE: IntakeRules = IntakeRules {
    api: "Sync for Expenses v1",
    expense_types: &[
        TransactionKind::Payment,
        TransactionKind::Refund,
        TransactionKind::Reward,
        TransactionKind::Chargeback,
        TransactionKind::TransferIn,
        TransactionKind::TransferOut,
        TransactionKind::AdjustmentIn,
        TransactionKind::AdjustmentOut,
    ],
    expense_fields: &["currencyRate", "contactRef", "merchantName", "notes"],
    line_fields: &["taxAmount", "taxRateRef", "accountRef", "trackingRefs"],
    line_requires: &["taxAmount", "accountRef"],
    account_or_item: false,
    contact_type_field: "contactType",
    tracking_fields: &[],
    reimbursable_fields: None,
    reimbursable_line_fields: &[],
    receipt_types: &["application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"],
    max_receipt_bytes: 4 * 1024 * 1024,
    transfers_and_adjustments: false,
};

fn kind(kind: TransactionKind) -> TransactionType {
    match kind {
        TransactionKind::Payment => TransactionType::Payment,
        TransactionKind::Refund => TransactionType::Refund,
        TransactionKind::Reward => TransactionType::Reward,
        TransactionKind::Chargeback => TransactionType::Chargeback,
        TransactionKind::TransferIn => TransactionType::TransferIn,
        TransactionKind::TransferOut => TransactionType::TransferOut,
        TransactionKind::AdjustmentIn => TransactionType::AdjustmentIn,
        TransactionKind::AdjustmentOut => TransactionType::AdjustmentOut,
        // Refused at intake under v1 (no such endpoint): never stored for it.
        TransactionKind::Reimbursable => unreachable!("v1 has no reimbursable expenses; intake refuses them"),
    }
}

fn record(id: &str) -> RecordRef {
    RecordRef { id: id.to_string() }
}

impl From<&Transaction> for ExpenseTransaction {
    fn from(t: &Transaction) -> Self {
        ExpenseTransaction {
            id: t.id,
            kind: kind(t.kind),
            issue_date: t.issue_date.clone(),
            currency: t.currency.clone(),
            currency_rate: t.currency_rate,
            contact_ref: t.contact_ref.as_ref().map(|c| ContactRef {
                id: c.id.clone(),
                contact_type: c.contact_type.map(|OurContactType::Supplier| ContactType::Supplier),
            }),
            merchant_name: t.merchant_name.clone(),
            lines: t
                .lines
                .iter()
                .map(|line| ExpenseTransactionLine {
                    net_amount: line.net_amount,
                    // Intake requires both under v1.
                    tax_amount: line.tax_amount.unwrap_or_default(),
                    tax_rate_ref: line.tax_rate_ref.as_ref().map(|r| record(&r.id)),
                    account_ref: record(line.account_ref.as_ref().map_or("", |r| r.id.as_str())),
                    tracking_refs: line.tracking_refs.as_ref().map(|refs| refs.iter().map(|r| record(&r.id)).collect()),
                })
                .collect(),
            notes: t.notes.clone(),
        }
    }
}
