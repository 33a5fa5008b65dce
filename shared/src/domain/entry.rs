//! What one approved item asks Codat to record. Expenses and reimbursable expenses are a
//! [`Transaction`]; the current API's transfers (money moved between two accounts) and
//! adjustments (a journal of signed lines) have shapes of their own and endpoints of their own.
//!
//! Stored untagged under the expense record's `transaction` attribute, so records written
//! before transfers and adjustments existed read back, and fingerprint, unchanged.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::transaction::{BillTo, Ref, Tracking, Transaction};
use super::ExpenseId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Transaction(Transaction),
    Transfer(Transfer),
    Adjustment(Adjustment),
}

/// The four kinds an approval holds; each is one create endpoint on the current API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    Expense,
    Reimbursable,
    Transfer,
    Adjustment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Expense => "expense",
            EntryKind::Reimbursable => "reimbursable",
            EntryKind::Transfer => "transfer",
            EntryKind::Adjustment => "adjustment",
        }
    }

    /// Codat attaches files to expense transactions only: "attachments for Transfer and
    /// Adjustment transactions are not supported for any integration".
    pub fn takes_attachment(self) -> bool {
        matches!(self, EntryKind::Expense | EntryKind::Reimbursable)
    }

    /// How many of this kind one create call carries: a transfer is one PUT by its id.
    pub fn per_create(self) -> usize {
        match self {
            EntryKind::Transfer => 1,
            _ => super::MAX_CREATE_ITEMS,
        }
    }
}

impl Entry {
    pub fn id(&self) -> ExpenseId {
        match self {
            Entry::Transaction(t) => t.id,
            Entry::Transfer(t) => t.id,
            Entry::Adjustment(a) => a.id,
        }
    }

    pub fn kind(&self) -> EntryKind {
        match self {
            Entry::Transaction(t) if t.is_reimbursable() => EntryKind::Reimbursable,
            Entry::Transaction(_) => EntryKind::Expense,
            Entry::Transfer(_) => EntryKind::Transfer,
            Entry::Adjustment(_) => EntryKind::Adjustment,
        }
    }

    /// The stored `type`: a transaction's type (`Payment`, …, `Reimbursable`), or the kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Entry::Transaction(t) => t.kind.as_str(),
            Entry::Transfer(_) => "Transfer",
            Entry::Adjustment(_) => "Adjustment",
        }
    }

    pub fn as_transaction(&self) -> Option<&Transaction> {
        match self {
            Entry::Transaction(t) => Some(t),
            _ => None,
        }
    }
}

/// Marks a stored transfer (`"type": "Transfer"`), so it can never read as another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TransferType {
    #[default]
    Transfer,
}

/// Marks a stored adjustment (`"type": "Adjustment"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AdjustmentType {
    #[default]
    Adjustment,
}

/// One side of a transfer: the account and the amount, in that account's own currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferSide {
    pub account_ref: Ref,
    pub amount: Decimal,
}

/// Money moved from one account to another (a card top-up, a balance transfer). Its id is
/// also the transfer's id in Codat, where a PUT of it creates *or updates* it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transfer {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: TransferType,
    /// Codat's date-time form, e.g. `2024-05-21T00:00:00Z`.
    pub date: String,
    pub from: TransferSide,
    pub to: TransferSide,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A journal line: positive debits, negative credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentLine {
    pub amount: Decimal,
    pub account_ref: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<Tracking>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_to: Option<BillTo>,
}

/// A write-off or correction (a foreign-exchange difference, say) as balanced journal lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Adjustment {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: AdjustmentType,
    pub date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub lines: Vec<AdjustmentLine>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_reads_back_as_itself() {
        let transfer = json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01", "type": "Transfer",
            "date": "2024-05-21T00:00:00Z", "from": {"accountRef": {"id": "a"}, "amount": "10.00"},
            "to": {"accountRef": {"id": "b"}, "amount": "9.5"}});
        let entry: Entry = serde_json::from_value(transfer.clone()).unwrap();
        assert_eq!(entry.kind(), EntryKind::Transfer);
        assert_eq!(serde_json::to_value(&entry).unwrap(), transfer);

        let adjustment = json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a02", "type": "Adjustment",
            "date": "2024-05-21T00:00:00Z", "currency": "GBP",
            "lines": [{"amount": "5", "accountRef": {"id": "a"}}, {"amount": "-5", "accountRef": {"id": "b"}}]});
        let entry: Entry = serde_json::from_value(adjustment.clone()).unwrap();
        assert_eq!(entry.kind(), EntryKind::Adjustment);
        assert_eq!(serde_json::to_value(&entry).unwrap(), adjustment);

        let expense = json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a03", "type": "Payment",
            "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP", "lines": [{"netAmount": "5"}]});
        let entry: Entry = serde_json::from_value(expense.clone()).unwrap();
        assert_eq!(entry.kind(), EntryKind::Expense);
        assert_eq!(serde_json::to_value(&entry).unwrap(), expense);
    }

    #[test]
    fn a_transfer_is_never_read_as_an_adjustment_or_the_reverse() {
        let mislabelled = json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01", "type": "Adjustment",
            "date": "2024-05-21T00:00:00Z", "from": {"accountRef": {"id": "a"}, "amount": "10"},
            "to": {"accountRef": {"id": "b"}, "amount": "10"}});
        assert!(serde_json::from_value::<Entry>(mislabelled).is_err());
    }
}
