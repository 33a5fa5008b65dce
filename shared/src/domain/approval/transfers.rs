//! Transfers and adjustments at intake: the current API's `TransferTransactionRequest` and
//! `AdjustmentTransactionRequest`, each with the transaction id that is also our expense id.
//! Neither takes a receipt: Codat attaches no file to them in any integration.

use rust_decimal::Decimal;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{fields, item_id, tracking_refs, ApprovedExpense, RawBillTo, ValidationError, MAX_LINES};
use crate::domain::transaction::{Ref, Tracking};
use crate::domain::{Adjustment, AdjustmentLine, AdjustmentType, Entry, Transfer, TransferSide, TransferType};
use crate::json::{exact_decimal, exact_decimal_opt, Object};

/// A transfer's amounts are in each account's own currency, which the request does not name:
/// at most the decimal places of any ISO 4217 currency (CLF has 4).
const TRANSFER_DECIMAL_PLACES: u32 = 4;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawTransfer {
    id: String,
    date: String,
    from: Object<RawSide>,
    to: Object<RawSide>,
    description: Option<String>,
    /// Refused with a reason, rather than as an unknown field.
    receipt: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSide {
    account_ref: Object<Ref>,
    #[serde(deserialize_with = "exact_decimal")]
    amount: Decimal,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawAdjustment {
    id: String,
    date: String,
    currency: String,
    #[serde(default, deserialize_with = "exact_decimal_opt")]
    currency_rate: Option<Decimal>,
    reference: Option<String>,
    lines: Vec<Object<RawAdjustmentLine>>,
    receipt: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAdjustmentLine {
    #[serde(deserialize_with = "exact_decimal")]
    amount: Decimal,
    account_ref: Object<Ref>,
    description: Option<String>,
    tracking_refs: Option<Vec<Object<Tracking>>>,
    invoice_to: Option<Object<RawBillTo>>,
}

fn no_receipt(receipt: Option<IgnoredAny>, at: &str, kind: &str) -> Result<(), ValidationError> {
    match receipt {
        Some(_) => Err(ValidationError::new(
            format!("{at}.receipt"),
            format!("Codat attaches no file to {kind} in any integration: send it without a receipt"),
        )),
        None => Ok(()),
    }
}

fn reference(reference: Ref, at: &str) -> Result<Ref, ValidationError> {
    fields::id(&reference.id, &format!("{at}.id"))?;
    Ok(reference)
}

impl RawSide {
    fn validate(self, at: &str) -> Result<TransferSide, ValidationError> {
        let account_ref = reference(self.account_ref.into_inner(), &format!("{at}.accountRef"))?;
        let field = format!("{at}.amount");
        if self.amount <= Decimal::ZERO {
            return Err(ValidationError::new(
                field,
                "must be greater than zero: the transfer's direction is from one account to the other",
            ));
        }
        if self.amount >= Decimal::from(10u64.pow(fields::MAX_AMOUNT_DIGITS)) {
            let digits = fields::MAX_AMOUNT_DIGITS;
            return Err(ValidationError::new(
                field,
                format!("must have at most {digits} digits before the decimal point"),
            ));
        }
        if self.amount.normalize().scale() > TRANSFER_DECIMAL_PLACES {
            return Err(ValidationError::new(
                field,
                format!("has more than {TRANSFER_DECIMAL_PLACES} decimal places, more than any currency has"),
            ));
        }
        Ok(TransferSide { account_ref, amount: self.amount })
    }
}

impl RawTransfer {
    pub(super) fn validate(self, at: &str) -> Result<ApprovedExpense, ValidationError> {
        let id = item_id(&self.id, at)?;
        no_receipt(self.receipt, at, "a transfer")?;
        let date = fields::date(&self.date, &format!("{at}.date"))?;
        let from = self.from.into_inner().validate(&format!("{at}.from"))?;
        let to = self.to.into_inner().validate(&format!("{at}.to"))?;
        if from.account_ref == to.account_ref {
            return Err(ValidationError::new(
                format!("{at}.to.accountRef.id"),
                "is the from account too: a transfer moves money between two accounts",
            ));
        }
        if let Some(description) = &self.description {
            fields::text(description, &format!("{at}.description"))?;
        }
        Ok(ApprovedExpense {
            entry: Entry::Transfer(Transfer {
                id,
                kind: TransferType::Transfer,
                date,
                from,
                to,
                description: self.description,
            }),
            receipt: None,
            at: at.to_string(),
        })
    }
}

impl RawAdjustment {
    pub(super) fn validate(self, at: &str) -> Result<ApprovedExpense, ValidationError> {
        let id = item_id(&self.id, at)?;
        no_receipt(self.receipt, at, "an adjustment")?;
        let date = fields::date(&self.date, &format!("{at}.date"))?;
        let currency = fields::currency(&self.currency, &format!("{at}.currency"))?;
        if let Some(rate) = self.currency_rate {
            fields::rate(rate, &format!("{at}.currencyRate"))?;
        }
        if let Some(reference) = &self.reference {
            fields::line(reference, &format!("{at}.reference"))?;
        }
        if self.lines.is_empty() || self.lines.len() > MAX_LINES {
            return Err(ValidationError::new(format!("{at}.lines"), format!("must hold 1 to {MAX_LINES} lines")));
        }
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.into_iter().enumerate() {
            let line_at = format!("{at}.lines[{i}]");
            let line = line.into_inner();
            fields::amount(line.amount, currency, &self.currency, &format!("{line_at}.amount"))?;
            let account_ref = reference(line.account_ref.into_inner(), &format!("{line_at}.accountRef"))?;
            if let Some(description) = &line.description {
                fields::text(description, &format!("{line_at}.description"))?;
            }
            // Any `dataType` is fine here: adjustment lines may also link a supplier.
            let tracking_refs = tracking_refs(line.tracking_refs, &line_at, |_, _| Ok(()))?;
            let invoice_to = line.invoice_to.map(|b| b.into_inner().validate(&line_at)).transpose()?;
            lines.push(AdjustmentLine {
                amount: line.amount,
                account_ref,
                description: line.description,
                tracking_refs,
                invoice_to,
            });
        }
        // A journal balances: each amount is bounded above, so the sum cannot overflow.
        let total: Decimal = lines.iter().map(|l| l.amount).sum();
        if !total.is_zero() {
            return Err(ValidationError::new(
                format!("{at}.lines"),
                format!(
                    "total {} {}: debits (positive amounts) and credits (negative amounts) must balance to zero",
                    total.normalize(),
                    self.currency
                ),
            ));
        }
        Ok(ApprovedExpense {
            entry: Entry::Adjustment(Adjustment {
                id,
                kind: AdjustmentType::Adjustment,
                date,
                currency: self.currency,
                currency_rate: self.currency_rate,
                reference: self.reference,
                lines,
            }),
            receipt: None,
            at: at.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::tests::{company, expense, RULES};
    use super::super::{ApprovalBatch, IntakeRules};
    use crate::domain::{EntryKind, Expense, Status, ValidationError};

    /// The current API's kinds: transfers and adjustments of their own.
    const CURRENT: IntakeRules = IntakeRules { transfers_and_adjustments: true, ..RULES };
    const TRANSFER_ID: &str = "1f0c5a44-4c1e-4a4b-9d76-0d3f7b6b3a10";
    const ADJUSTMENT_ID: &str = "2e9b6f2a-8d7c-4b53-a1f4-5c0e9d8a7b21";

    fn transfer() -> Value {
        json!({"id": TRANSFER_ID, "date": "2024-05-21", "description": "card top-up",
               "from": {"accountRef": {"id": "bank-1"}, "amount": 100.00},
               "to": {"accountRef": {"id": "card-7"}, "amount": 85.10}})
    }

    fn adjustment() -> Value {
        json!({"id": ADJUSTMENT_ID, "date": "2024-05-21T00:00:00Z", "currency": "USD", "currencyRate": 1,
               "reference": "FX May",
               "lines": [{"amount": 0.35, "accountRef": {"id": "fx-loss"}, "description": "debit",
                          "trackingRefs": [{"id": "sup-1", "dataType": "suppliers"}],
                          "invoiceTo": {"id": "cust-1", "type": "customer"}},
                         {"amount": -0.35, "accountRef": {"id": "card-7"}}]})
    }

    fn parse(body: Value, rules: &IntakeRules) -> Result<ApprovalBatch, ValidationError> {
        ApprovalBatch::parse(company(), body.to_string().as_bytes(), rules)
    }

    #[test]
    fn transfers_and_adjustments_become_entries_of_their_own_kind_without_receipts() {
        let id = "4d7c6929-7770-412b-91bb-44d3bc71d111";
        let batch = parse(
            json!({"adjustments": [adjustment()], "transfers": [transfer()], "expenses": [expense(id)]}),
            &CURRENT,
        )
        .unwrap();
        let kinds: Vec<_> = batch.expenses.iter().map(|e| (e.entry.kind(), e.at.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (EntryKind::Expense, "expenses[0]"),
                (EntryKind::Transfer, "transfers[0]"),
                (EntryKind::Adjustment, "adjustments[0]")
            ]
        );
        assert!(batch.expenses[1].receipt.is_none() && batch.expenses[2].receipt.is_none());
        let stored = serde_json::to_value(&batch.expenses[1].entry).unwrap();
        assert_eq!(stored["date"], "2024-05-21T00:00:00Z");
        assert_eq!(stored["to"]["amount"], "85.1", "exact digits, as sent (json! writes 85.10 as 85.1)");
        let stored = serde_json::to_value(&batch.expenses[2].entry).unwrap();
        assert_eq!(stored["lines"][1]["amount"], "-0.35");
        assert_eq!(stored["lines"][0]["trackingRefs"][0]["dataType"], "suppliers");
    }

    #[test]
    fn bad_transfers_and_adjustments_are_refused_naming_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, &str, Value, Mutation)> = vec![
            ("transfers[0].receipt", "no file", transfer(), Box::new(|t| t["receipt"] = json!({"fileName": "a.png"}))),
            (
                "transfers[0].to.accountRef.id",
                "two accounts",
                transfer(),
                Box::new(|t| t["to"]["accountRef"]["id"] = json!("bank-1")),
            ),
            ("transfers[0].from.amount", "greater than zero", transfer(), Box::new(|t| t["from"]["amount"] = json!(0))),
            ("transfers[0].to.amount", "greater than zero", transfer(), Box::new(|t| t["to"]["amount"] = json!(-5))),
            ("transfers[0].to.amount", "decimal places", transfer(), Box::new(|t| t["to"]["amount"] = json!(1.00001))),
            ("transfers[0].from.amount", "digits", transfer(), Box::new(|t| t["from"]["amount"] = json!(1e13))),
            ("transfers[0].date", "", transfer(), Box::new(|t| t["date"] = json!("21/05/2024"))),
            ("transfers[0].id", "canonical", transfer(), Box::new(|t| t["id"] = json!(TRANSFER_ID.to_uppercase()))),
            (
                "transfers[0].from.accountRef.id",
                "",
                transfer(),
                Box::new(|t| t["from"]["accountRef"]["id"] = json!("")),
            ),
            ("transfers[0].description", "", transfer(), Box::new(|t| t["description"] = json!("top\u{202e}up"))),
            (
                "transfers[0].to",
                "",
                transfer(),
                Box::new(|t| {
                    t.as_object_mut().unwrap().remove("to");
                }),
            ),
            ("transfers[0].currency", "unknown field", transfer(), Box::new(|t| t["currency"] = json!("GBP"))),
            ("adjustments[0].lines", "balance", adjustment(), Box::new(|a| a["lines"][1]["amount"] = json!(-0.34))),
            (
                "adjustments[0].lines[1].amount",
                "decimal places",
                adjustment(),
                Box::new(|a| a["lines"][1]["amount"] = json!(-0.355)),
            ),
            ("adjustments[0].lines", "1 to 100", adjustment(), Box::new(|a| a["lines"] = json!([]))),
            ("adjustments[0].currency", "", adjustment(), Box::new(|a| a["currency"] = json!("XAU"))),
            ("adjustments[0].currencyRate", "", adjustment(), Box::new(|a| a["currencyRate"] = json!(0))),
            ("adjustments[0].receipt", "no file", adjustment(), Box::new(|a| a["receipt"] = json!({}))),
            (
                "adjustments[0].lines[0].invoiceTo.type",
                "customer",
                adjustment(),
                Box::new(|a| a["lines"][0]["invoiceTo"]["type"] = json!("supplier")),
            ),
            (
                "adjustments[0].lines[0].trackingRefs",
                "1 to 10",
                adjustment(),
                Box::new(|a| a["lines"][0]["trackingRefs"] = json!([])),
            ),
            (
                "adjustments[0].lines[1].accountRef",
                "",
                adjustment(),
                Box::new(|a| {
                    a["lines"][1].as_object_mut().unwrap().remove("accountRef");
                }),
            ),
            (
                "adjustments[0].lines[0].netAmount",
                "unknown field",
                adjustment(),
                Box::new(|a| a["lines"][0]["netAmount"] = json!(1)),
            ),
        ];
        for (field, words, mut item, mutate) in cases {
            mutate(&mut item);
            let kind = field.split('[').next().unwrap();
            let err = parse(json!({ kind: [item] }), &CURRENT).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(words), "{err}");
        }
    }

    #[test]
    fn each_api_names_where_its_transfers_and_adjustments_go() {
        // Under v1 they are expense types; the kinds of their own are refused by name.
        for kind in ["transfers", "adjustments"] {
            let item = if kind == "transfers" { transfer() } else { adjustment() };
            let err = parse(json!({ kind: [item] }), &RULES).unwrap_err();
            assert_eq!(err.field, kind, "{err}");
            assert!(err.message.contains("send them in expenses"), "{err}");
        }
        // Under the current API the v1 types are refused naming the kind to use.
        let current = IntakeRules { expense_types: &[crate::domain::TransactionKind::Payment], ..CURRENT };
        for (v1_type, kind) in [
            ("TransferIn", "transfers"),
            ("TransferOut", "transfers"),
            ("AdjustmentIn", "adjustments"),
            ("AdjustmentOut", "adjustments"),
        ] {
            let mut card = expense("4d7c6929-7770-412b-91bb-44d3bc71d111");
            card["type"] = json!(v1_type);
            let err = parse(json!({"expenses": [card]}), &current).unwrap_err();
            assert_eq!(err.field, "expenses[0].type", "{err}");
            assert!(err.message.contains(&format!("send it in {kind}")), "{err}");
        }
    }

    fn stored(body: Value) -> Expense {
        let approved = parse(body, &CURRENT).unwrap().expenses.remove(0);
        let now = chrono::Utc::now();
        Expense {
            company_id: company(),
            expense_id: approved.id(),
            status: Status::Approved,
            api: crate::domain::CodatApi::Expenses,
            entry: approved.entry.clone(),
            receipt: None,
            fingerprint: approved.fingerprint(),
            dataset_id: None,
            sync_id: None,
            attachment_id: None,
            failure: None,
            note: None,
            approved_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_replay_is_recognised_and_a_conflict_names_what_changed() {
        let record = stored(json!({"transfers": [transfer()]}));
        let same = parse(json!({"transfers": [transfer()]}), &CURRENT).unwrap().expenses.remove(0);
        assert!(record.is_approval_of(&same));
        let mut changed = transfer();
        changed["to"]["amount"] = json!(85.11);
        let changed = parse(json!({"transfers": [changed]}), &CURRENT).unwrap().expenses.remove(0);
        assert!(!record.is_approval_of(&changed));
        assert_eq!(record.difference_from(&changed), "transfers[0].to.amount");

        let record = stored(json!({"adjustments": [adjustment()]}));
        let mut changed = adjustment();
        changed["lines"][0].as_object_mut().unwrap().remove("description");
        let changed = parse(json!({"adjustments": [changed]}), &CURRENT).unwrap().expenses.remove(0);
        assert_eq!(record.difference_from(&changed), "adjustments[0].lines[0].description");
    }
}
