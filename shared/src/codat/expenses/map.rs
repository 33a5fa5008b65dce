//! Our transactions as the current API's models, and what the current API accepts at intake.

use super::models::*;
use crate::domain::{
    Adjustment, IntakeRules, Ref, Tracking, TrackingDataType as OurDataType, Transaction, TransactionKind, Transfer,
    TransferSide,
};

const LINE_FIELDS: &[&str] = &["taxAmount", "taxRateRef", "accountRef", "itemRef", "trackingRefs", "invoiceTo"];

/// What the current Expenses API takes: four card types (transfers and adjustments have
/// endpoints of their own), its new fields, reimbursable expenses, lines needing only a net
/// amount and an account or item. Receipts: the types every integration that takes
/// attachments accepts (PDF, PNG, JPEG, GIF; no WebP), up to Xero's 3 MB, the smallest limit
/// in the upload endpoint's table.
pub const INTAKE: IntakeRules = IntakeRules {
    api: "Codat's Expenses API",
    expense_types: &[
        TransactionKind::Payment,
        TransactionKind::Refund,
        TransactionKind::Reward,
        TransactionKind::Chargeback,
    ],
    expense_fields: &[
        "currencyRate",
        "contactRef",
        "bankAccountRef",
        "reference",
        "merchantName",
        "notes",
        "postAsDraft",
    ],
    line_fields: LINE_FIELDS,
    line_requires: &[],
    account_or_item: true,
    contact_type_field: "type",
    tracking_fields: &["dataType"],
    reimbursable_fields: Some(&["reference", "apAccountRef", "currencyRate", "notes"]),
    reimbursable_line_fields: &[
        "description",
        "taxAmount",
        "taxRateRef",
        "accountRef",
        "itemRef",
        "trackingRefs",
        "invoiceTo",
    ],
    receipt_types: &["application/pdf", "image/png", "image/jpeg", "image/gif"],
    max_receipt_bytes: 3 * 1024 * 1024,
    transfers_and_adjustments: true,
};

fn record(reference: &Option<Ref>) -> Option<RecordRef> {
    reference.as_ref().map(|r| RecordRef { id: r.id.clone() })
}

fn tracking(refs: &Option<Vec<Tracking>>) -> Option<Vec<TrackingRef>> {
    refs.as_ref().map(|refs| {
        refs.iter()
            .map(|r| TrackingRef {
                id: r.id.clone(),
                data_type: r.data_type.map(|t| match t {
                    OurDataType::TrackingCategories => TrackingDataType::TrackingCategories,
                    OurDataType::Customers => TrackingDataType::Customers,
                    // Intake takes suppliers on adjustment lines only.
                    OurDataType::Suppliers => unreachable!("an expense line never links a supplier"),
                }),
            })
            .collect()
    })
}

fn invoice_to(bill_to: &Option<crate::domain::BillTo>) -> Option<InvoiceTo> {
    bill_to.as_ref().map(|c| InvoiceTo { id: c.id.clone(), kind: Some(InvoiceToType::Customer) })
}

fn kind(kind: TransactionKind) -> ExpenseTransactionType {
    match kind {
        TransactionKind::Payment => ExpenseTransactionType::Payment,
        TransactionKind::Refund => ExpenseTransactionType::Refund,
        TransactionKind::Reward => ExpenseTransactionType::Reward,
        TransactionKind::Chargeback => ExpenseTransactionType::Chargeback,
        // Intake refuses these under this API, so no stored expense of it has them.
        other => unreachable!("{other:?} is not an expense transaction type of the current API"),
    }
}

impl From<&Transaction> for ExpenseTransaction {
    fn from(t: &Transaction) -> Self {
        ExpenseTransaction {
            id: t.id,
            kind: kind(t.kind),
            issue_date: t.issue_date.clone(),
            currency: t.currency.clone(),
            currency_rate: t.currency_rate,
            contact_ref: t
                .contact_ref
                .as_ref()
                .map(|c| ExpenseContactRef { id: c.id.clone(), kind: c.contact_type.map(|_| ContactType::Supplier) }),
            bank_account_ref: record(&t.bank_account_ref),
            reference: t.reference.clone(),
            merchant_name: t.merchant_name.clone(),
            lines: t
                .lines
                .iter()
                .map(|line| ExpenseTransactionLine {
                    net_amount: line.net_amount,
                    tax_amount: line.tax_amount,
                    tax_rate_ref: record(&line.tax_rate_ref),
                    account_ref: record(&line.account_ref),
                    item_ref: record(&line.item_ref),
                    tracking_refs: tracking(&line.tracking_refs),
                    invoice_to: invoice_to(&line.invoice_to),
                })
                .collect(),
            notes: t.notes.clone(),
            post_as_draft: t.post_as_draft,
        }
    }
}

impl From<&Transaction> for ReimbursableExpenseTransaction {
    fn from(t: &Transaction) -> Self {
        ReimbursableExpenseTransaction {
            id: t.id,
            reference: t.reference.clone(),
            contact_ref: ReimbursementContactRef {
                id: t.contact_ref.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
            },
            ap_account_ref: record(&t.ap_account_ref),
            issue_date: t.issue_date.clone(),
            due_date: t.due_date.clone().unwrap_or_else(|| t.issue_date.clone()),
            currency: t.currency.clone(),
            currency_rate: t.currency_rate,
            notes: t.notes.clone(),
            lines: t
                .lines
                .iter()
                .map(|line| ReimbursableExpenseTransactionLine {
                    description: line.description.clone(),
                    net_amount: line.net_amount,
                    tax_amount: line.tax_amount,
                    tax_rate_ref: record(&line.tax_rate_ref),
                    account_ref: record(&line.account_ref),
                    item_ref: record(&line.item_ref),
                    tracking_refs: tracking(&line.tracking_refs),
                    invoice_to: invoice_to(&line.invoice_to),
                })
                .collect(),
        }
    }
}

fn side(side: &TransferSide) -> TransferTransactionSide {
    TransferTransactionSide { account_ref: TransferAccountRef { id: side.account_ref.id.clone() }, amount: side.amount }
}

/// The transfer's id is the PUT's path, not part of its body.
impl From<&Transfer> for TransferTransactionRequest {
    fn from(t: &Transfer) -> Self {
        TransferTransactionRequest {
            description: t.description.clone(),
            date: t.date.clone(),
            from: side(&t.from),
            to: side(&t.to),
        }
    }
}

impl From<&Adjustment> for AdjustmentTransactionRequest {
    fn from(a: &Adjustment) -> Self {
        AdjustmentTransactionRequest {
            id: a.id,
            date: a.date.clone(),
            currency: a.currency.clone(),
            currency_rate: a.currency_rate,
            reference: a.reference.clone(),
            lines: a
                .lines
                .iter()
                .map(|line| AdjustmentTransactionLine {
                    amount: line.amount,
                    account_ref: RecordRef { id: line.account_ref.id.clone() },
                    description: line.description.clone(),
                    tracking_refs: line.tracking_refs.as_ref().map(|refs| {
                        refs.iter()
                            .map(|r| TrackingRefAdjustmentTransaction {
                                id: r.id.clone(),
                                data_type: r.data_type.map(|t| match t {
                                    OurDataType::TrackingCategories => AdjustmentTrackingDataType::TrackingCategories,
                                    OurDataType::Customers => AdjustmentTrackingDataType::Customers,
                                    OurDataType::Suppliers => AdjustmentTrackingDataType::Suppliers,
                                }),
                            })
                            .collect()
                    }),
                    invoice_to: invoice_to(&line.invoice_to),
                })
                .collect(),
        }
    }
}
