//! Approval intake: parse a batch of approved expenses into valid domain values, or name the
//! first field that is wrong. What each Codat API accepts comes from that API's
//! [`IntakeRules`], so a batch holds exactly what the selected API can take. Nothing downstream
//! re-checks what is checked here, and a batch that parses can be stored whole (every limit a
//! write can hit is checked here, before the first write).

mod transfers;

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::fields::{self, Currency};
use super::transaction::{
    BillTo, Contact, ContactType, Line, Ref, Tracking, TrackingDataType, Transaction, TransactionKind,
};
use super::{CompanyId, Entry, ExpenseId};
use crate::json::{self, exact_decimal, exact_decimal_opt, Object};
use transfers::{RawAdjustment, RawTransfer};

/// At most this many expenses in one approval request (split into chunks of 50 for Codat).
pub const MAX_BATCH: usize = 100;
const MAX_LINES: usize = 100;
const MAX_TRACKING_REFS: usize = 10;
/// Lambda takes at most 6 MB per request (API Gateway answers larger ones itself).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// One expense's stored record, at most: DynamoDB holds 400 KB per item, and later steps add
/// ids and failure reasons to it.
pub const MAX_STORED_EXPENSE_BYTES: usize = 300 * 1024;
/// One approval is written in one DynamoDB transaction, which holds at most 4 MB.
pub const MAX_STORED_APPROVAL_BYTES: usize = 3_500_000;
/// What a stored record adds to its transaction: keys, status, receipt, times.
const STORED_OVERHEAD_BYTES: usize = 2048;

/// What one Codat API accepts at intake. Each API declares its own (`codat::v1::INTAKE`,
/// `codat::expenses::INTAKE`); the parser below applies whichever the deployment selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeRules {
    /// The API's name, for messages.
    pub api: &'static str,
    pub expense_types: &'static [TransactionKind],
    /// Optional fields of an expense the API takes (beyond id, type, issueDate, currency, lines).
    pub expense_fields: &'static [&'static str],
    /// Optional line fields the API takes (beyond netAmount).
    pub line_fields: &'static [&'static str],
    /// Line fields the API requires (beyond netAmount).
    pub line_requires: &'static [&'static str],
    /// A line names an account or an item, never both (the current API's `itemRef`).
    pub account_or_item: bool,
    /// How `contactRef` spells its type field: `contactType` (v1's schema) or `type`.
    pub contact_type_field: &'static str,
    /// Optional fields of a tracking reference (beyond id).
    pub tracking_fields: &'static [&'static str],
    /// Reimbursable expenses, when the API has them: their optional fields, and their lines'.
    pub reimbursable_fields: Option<&'static [&'static str]>,
    pub reimbursable_line_fields: &'static [&'static str],
    /// Receipt content types every integration of the API can attach, and the largest size.
    pub receipt_types: &'static [&'static str],
    pub max_receipt_bytes: usize,
    /// Transfers and adjustments as kinds of their own (the current API's endpoints for them);
    /// without, they are card expenses of the types `TransferIn` … `AdjustmentOut`.
    pub transfers_and_adjustments: bool,
}

/// A request field that is missing or wrong: the HTTP edge answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON path of the offending field, e.g. `expenses[1].lines[0].accountRef.id`.
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// A receipt as the user sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Receipt {
    pub fn sha256_hex(&self) -> String {
        hex(&Sha256::digest(&self.bytes))
    }
}

// Receipt bytes never reach a log line.
impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One approved item: what to create in Codat, plus its receipt where its kind takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedExpense {
    pub entry: Entry,
    pub receipt: Option<Receipt>,
    /// Where it was in the request (`expenses[2]`, `transfers[0]`), to name its fields.
    pub at: String,
}

impl ApprovedExpense {
    pub fn id(&self) -> ExpenseId {
        self.entry.id()
    }

    /// Identifies the content of an approval, so a re-post of the same expense is recognised
    /// and a different expense reusing its id is refused.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&self.entry).expect("entries serialize"));
        if let Some(receipt) = &self.receipt {
            hasher.update(receipt.file_name.as_bytes());
            hasher.update([0]);
            hasher.update(receipt.content_type.as_bytes());
            hasher.update([0]);
            hasher.update(&receipt.bytes);
        }
        hex(&hasher.finalize())
    }

    /// About what its stored record will weigh (the transaction as JSON, plus the rest).
    fn stored_bytes(&self) -> usize {
        serde_json::to_vec(&self.entry).map_or(usize::MAX, |json| json.len())
            + self.receipt.as_ref().map_or(0, |r| r.file_name.len() + r.content_type.len())
            + STORED_OVERHEAD_BYTES
    }
}

/// A valid batch of approved items for one company: card expenses, reimbursable expenses,
/// transfers, adjustments, each in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalBatch {
    pub company_id: CompanyId,
    pub expenses: Vec<ApprovedExpense>,
}

impl ApprovalBatch {
    /// Parses the approval request body, `{"expenses": [...], "reimbursableExpenses": [...],
    /// "transfers": [...], "adjustments": [...]}`, accepting exactly what `rules` (the selected
    /// Codat API) accepts.
    pub fn parse(company_id: CompanyId, body: &[u8], rules: &IntakeRules) -> Result<Self, ValidationError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ValidationError::new(
                "body",
                format!("is {} bytes; at most {MAX_BODY_BYTES} per request: split the batch", body.len()),
            ));
        }
        refuse_kinds_the_api_lacks(body, rules)?;
        let raw: Object<RawBatch> = json::parse(body)?;
        let raw = raw.into_inner();
        let reimbursables = raw.reimbursable_expenses.unwrap_or_default();
        let cards = raw.expenses.unwrap_or_default();
        let transfers = raw.transfers.unwrap_or_default();
        let adjustments = raw.adjustments.unwrap_or_default();
        let sizes = [
            ("expenses", cards.len()),
            ("reimbursableExpenses", reimbursables.len()),
            ("transfers", transfers.len()),
            ("adjustments", adjustments.len()),
        ];
        let count: usize = sizes.iter().map(|(_, n)| n).sum();
        if count == 0 {
            return Err(ValidationError::new("expenses", "must hold at least one expense"));
        }
        if count > MAX_BATCH {
            // Name the largest list: that is the one to split.
            let field = sizes.iter().max_by_key(|(_, n)| *n).map_or("expenses", |(name, _)| name);
            return Err(ValidationError::new(
                field,
                format!("holds {count} items in all; at most {MAX_BATCH} per request"),
            ));
        }
        let mut seen = HashSet::new();
        let mut expenses = Vec::with_capacity(count);
        let mut stored_bytes = 0;
        fn each<T>(
            name: &'static str,
            items: Vec<Object<T>>,
            validate: impl Fn(T, &str) -> Result<ApprovedExpense, ValidationError>,
        ) -> impl Iterator<Item = (String, Result<ApprovedExpense, ValidationError>)> {
            items.into_iter().enumerate().map(move |(i, item)| {
                let at = format!("{name}[{i}]");
                let approved = validate(item.into_inner(), &at);
                (at, approved)
            })
        }
        let parsed = each("expenses", cards, |e, at| e.validate(at, rules))
            .chain(each("reimbursableExpenses", reimbursables, |e, at| e.validate(at, rules)))
            .chain(each("transfers", transfers, |t, at| t.validate(at)))
            .chain(each("adjustments", adjustments, |a, at| a.validate(at)));
        for (at, expense) in parsed {
            let expense = expense?;
            if !seen.insert(expense.id()) {
                return Err(ValidationError::new(
                    format!("{at}.id"),
                    format!("{} appears more than once in this batch", expense.id()),
                ));
            }
            let bytes = expense.stored_bytes();
            if bytes > MAX_STORED_EXPENSE_BYTES {
                return Err(ValidationError::new(
                    at,
                    format!(
                        "would be {bytes} bytes when stored; at most {MAX_STORED_EXPENSE_BYTES} (DynamoDB holds 400 KB per item): shorten its text or split its lines"
                    ),
                ));
            }
            stored_bytes += bytes;
            expenses.push(expense);
        }
        if stored_bytes > MAX_STORED_APPROVAL_BYTES {
            return Err(ValidationError::new(
                "body",
                format!(
                    "would be {stored_bytes} bytes when stored; at most {MAX_STORED_APPROVAL_BYTES} per request, which is stored in one transaction: split the batch"
                ),
            ));
        }
        Ok(Self { company_id, expenses })
    }
}

/// Refuses a kind the API does not have by its own name, before its items' fields are judged
/// by the other API's rules.
fn refuse_kinds_the_api_lacks(body: &[u8], rules: &IntakeRules) -> Result<(), ValidationError> {
    if rules.reimbursable_fields.is_some() && rules.transfers_and_adjustments {
        return Ok(());
    }
    let keys: Object<std::collections::HashMap<String, serde::de::IgnoredAny>> = json::parse(body)?;
    if rules.reimbursable_fields.is_none() && keys.contains_key("reimbursableExpenses") {
        return Err(ValidationError::new(
            "reimbursableExpenses",
            format!("{} has no reimbursable expenses; they need Codat's current Expenses API", rules.api),
        ));
    }
    if !rules.transfers_and_adjustments {
        for (kind, types) in
            [("transfers", "TransferIn or TransferOut"), ("adjustments", "AdjustmentIn or AdjustmentOut")]
        {
            if keys.contains_key(kind) {
                return Err(ValidationError::new(
                    kind,
                    format!("{} has no {kind} of their own: send them in expenses, of type {types}", rules.api),
                ));
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBatch {
    expenses: Option<Vec<Object<RawExpense>>>,
    reimbursable_expenses: Option<Vec<Object<RawReimbursable>>>,
    transfers: Option<Vec<Object<RawTransfer>>>,
    adjustments: Option<Vec<Object<RawAdjustment>>>,
}

/// A card expense: the superset of both APIs' `ExpenseTransaction`; the rules pick.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawExpense {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    issue_date: String,
    currency: String,
    #[serde(default, deserialize_with = "exact_decimal_opt")]
    currency_rate: Option<Decimal>,
    contact_ref: Option<Object<RawContact>>,
    bank_account_ref: Option<Object<Ref>>,
    reference: Option<String>,
    merchant_name: Option<String>,
    lines: Vec<Object<RawLine>>,
    notes: Option<String>,
    post_as_draft: Option<bool>,
    receipt: Object<RawReceipt>,
}

/// The current API's reimbursable expense transaction, plus its receipt.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawReimbursable {
    id: String,
    reference: Option<String>,
    contact_ref: Object<RawContact>,
    ap_account_ref: Option<Object<Ref>>,
    issue_date: String,
    due_date: String,
    currency: String,
    #[serde(default, deserialize_with = "exact_decimal_opt")]
    currency_rate: Option<Decimal>,
    notes: Option<String>,
    lines: Vec<Object<RawLine>>,
    receipt: Object<RawReceipt>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawContact {
    id: String,
    contact_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLine {
    #[serde(deserialize_with = "exact_decimal")]
    net_amount: Decimal,
    #[serde(default, deserialize_with = "exact_decimal_opt")]
    tax_amount: Option<Decimal>,
    account_ref: Option<Object<Ref>>,
    tax_rate_ref: Option<Object<Ref>>,
    item_ref: Option<Object<Ref>>,
    tracking_refs: Option<Vec<Object<Tracking>>>,
    invoice_to: Option<Object<RawBillTo>>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBillTo {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawReceipt {
    file_name: String,
    content_type: String,
    /// Base64 (standard alphabet) of the file.
    data: String,
}

/// Refuses the first present field that `allowed` does not list.
fn only_allowed(
    at: &str,
    api: &str,
    allowed: &[&str],
    present: &[(&'static str, bool)],
) -> Result<(), ValidationError> {
    match present.iter().find(|(name, is_present)| *is_present && !allowed.contains(name)) {
        Some((name, _)) => Err(ValidationError::new(format!("{at}.{name}"), format!("is not accepted by {api}"))),
        None => Ok(()),
    }
}

/// What both kinds share, as sent: id, issue date, currency and rate.
struct RawHeader<'a> {
    id: &'a str,
    issue_date: &'a str,
    currency: &'a str,
    currency_rate: Option<Decimal>,
}

/// What both kinds share, checked.
struct Common {
    id: ExpenseId,
    issue_date: String,
    contact_ref: Option<Contact>,
    lines: Vec<Line>,
}

fn common(
    at: &str,
    rules: &IntakeRules,
    line_fields: &[&str],
    header: RawHeader<'_>,
    contact: Option<RawContact>,
    lines: Vec<Object<RawLine>>,
) -> Result<Common, ValidationError> {
    let id = item_id(header.id, at)?;
    let issue_date = fields::date(header.issue_date, &format!("{at}.issueDate"))?;
    let currency = fields::currency(header.currency, &format!("{at}.currency"))?;
    if let Some(rate) = header.currency_rate {
        fields::rate(rate, &format!("{at}.currencyRate"))?;
    }
    let contact_ref = contact.map(|c| c.validate(&format!("{at}.contactRef"), rules)).transpose()?;
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(ValidationError::new(format!("{at}.lines"), format!("must hold 1 to {MAX_LINES} lines")));
    }
    let money = Money { currency, code: header.currency };
    let lines = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| line.into_inner().validate(&format!("{at}.lines[{i}]"), rules, line_fields, money))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Common { id, issue_date, contact_ref, lines })
}

/// The currency a transaction's amounts are in.
#[derive(Clone, Copy)]
struct Money<'a> {
    currency: Currency,
    code: &'a str,
}

impl RawExpense {
    fn validate(self, at: &str, rules: &IntakeRules) -> Result<ApprovedExpense, ValidationError> {
        let kind = rules.expense_types.iter().copied().find(|k| k.as_str() == self.kind).ok_or_else(|| {
            let allowed: Vec<&str> = rules.expense_types.iter().map(|k| k.as_str()).collect();
            let instead = match self.kind.as_str() {
                "TransferIn" | "TransferOut" if rules.transfers_and_adjustments => {
                    format!(
                        "; {} is a transfer there: send it in transfers, with the from and to accounts and each one's amount",
                        self.kind
                    )
                }
                "AdjustmentIn" | "AdjustmentOut" if rules.transfers_and_adjustments => format!(
                    "; {} is an adjustment there: send it in adjustments, as journal lines with signed amounts (debits positive, credits negative)",
                    self.kind
                ),
                _ => String::new(),
            };
            ValidationError::new(
                format!("{at}.type"),
                format!("must be one of {} under {}{instead}", allowed.join(", "), rules.api),
            )
        })?;
        only_allowed(
            at,
            rules.api,
            rules.expense_fields,
            &[
                ("currencyRate", self.currency_rate.is_some()),
                ("contactRef", self.contact_ref.is_some()),
                ("bankAccountRef", self.bank_account_ref.is_some()),
                ("reference", self.reference.is_some()),
                ("merchantName", self.merchant_name.is_some()),
                ("notes", self.notes.is_some()),
                ("postAsDraft", self.post_as_draft.is_some()),
            ],
        )?;
        let bank_account_ref = self.bank_account_ref.map(Object::into_inner);
        if let Some(bank) = &bank_account_ref {
            fields::id(&bank.id, &format!("{at}.bankAccountRef.id"))?;
        }
        for (name, line) in [("reference", &self.reference), ("merchantName", &self.merchant_name)] {
            if let Some(line) = line {
                fields::line(line, &format!("{at}.{name}"))?;
            }
        }
        if let Some(notes) = &self.notes {
            fields::text(notes, &format!("{at}.notes"))?;
        }
        let header = RawHeader {
            id: &self.id,
            issue_date: &self.issue_date,
            currency: &self.currency,
            currency_rate: self.currency_rate,
        };
        let contact = self.contact_ref.map(Object::into_inner);
        let Common { id, issue_date, contact_ref, lines } =
            common(at, rules, rules.line_fields, header, contact, self.lines)?;
        let receipt = self.receipt.into_inner().validate(&format!("{at}.receipt"), rules)?;
        Ok(ApprovedExpense {
            at: at.to_string(),
            receipt: Some(receipt),
            entry: Entry::Transaction(Transaction {
                id,
                kind,
                issue_date,
                currency: self.currency,
                currency_rate: self.currency_rate,
                contact_ref,
                merchant_name: self.merchant_name,
                lines,
                notes: self.notes,
                bank_account_ref,
                reference: self.reference,
                post_as_draft: self.post_as_draft,
                due_date: None,
                ap_account_ref: None,
            }),
        })
    }
}

impl RawReimbursable {
    fn validate(self, at: &str, rules: &IntakeRules) -> Result<ApprovedExpense, ValidationError> {
        only_allowed(
            at,
            rules.api,
            rules.reimbursable_fields.unwrap_or_default(),
            &[
                ("reference", self.reference.is_some()),
                ("apAccountRef", self.ap_account_ref.is_some()),
                ("currencyRate", self.currency_rate.is_some()),
                ("notes", self.notes.is_some()),
            ],
        )?;
        let ap_account_ref = self.ap_account_ref.map(Object::into_inner);
        if let Some(ap) = &ap_account_ref {
            fields::id(&ap.id, &format!("{at}.apAccountRef.id"))?;
        }
        if let Some(reference) = &self.reference {
            fields::line(reference, &format!("{at}.reference"))?;
        }
        if let Some(notes) = &self.notes {
            fields::text(notes, &format!("{at}.notes"))?;
        }
        let due_date = fields::date(&self.due_date, &format!("{at}.dueDate"))?;
        let header = RawHeader {
            id: &self.id,
            issue_date: &self.issue_date,
            currency: &self.currency,
            currency_rate: self.currency_rate,
        };
        let contact = Some(self.contact_ref.into_inner());
        let Common { id, issue_date, contact_ref, lines } =
            common(at, rules, rules.reimbursable_line_fields, header, contact, self.lines)?;
        let receipt = self.receipt.into_inner().validate(&format!("{at}.receipt"), rules)?;
        Ok(ApprovedExpense {
            at: at.to_string(),
            receipt: Some(receipt),
            entry: Entry::Transaction(Transaction {
                id,
                kind: TransactionKind::Reimbursable,
                issue_date,
                currency: self.currency,
                currency_rate: self.currency_rate,
                contact_ref,
                merchant_name: None,
                lines,
                notes: self.notes,
                bank_account_ref: None,
                reference: self.reference,
                post_as_draft: None,
                due_date: Some(due_date),
                ap_account_ref,
            }),
        })
    }
}

impl RawContact {
    fn validate(self, at: &str, rules: &IntakeRules) -> Result<Contact, ValidationError> {
        fields::id(&self.id, &format!("{at}.id"))?;
        let (spelled, other) = if rules.contact_type_field == "type" {
            (self.kind, ("contactType", self.contact_type.is_some()))
        } else {
            (self.contact_type, ("type", self.kind.is_some()))
        };
        only_allowed(at, rules.api, &[], &[other])?;
        let contact_type = match spelled.as_deref() {
            None => None,
            Some("Supplier") => Some(ContactType::Supplier),
            Some(_) => {
                return Err(ValidationError::new(format!("{at}.{}", rules.contact_type_field), "must be Supplier"))
            }
        };
        Ok(Contact { id: self.id, contact_type })
    }
}

impl RawLine {
    fn validate(
        self,
        at: &str,
        rules: &IntakeRules,
        allowed: &[&str],
        money: Money<'_>,
    ) -> Result<Line, ValidationError> {
        let present = [
            ("taxAmount", self.tax_amount.is_some()),
            ("taxRateRef", self.tax_rate_ref.is_some()),
            ("accountRef", self.account_ref.is_some()),
            ("itemRef", self.item_ref.is_some()),
            ("trackingRefs", self.tracking_refs.is_some()),
            ("invoiceTo", self.invoice_to.is_some()),
            ("description", self.description.is_some()),
        ];
        only_allowed(at, rules.api, allowed, &present)?;
        if let Some((name, _)) =
            present.iter().find(|(name, is_present)| !is_present && rules.line_requires.contains(name))
        {
            return Err(ValidationError::new(format!("{at}.{name}"), format!("is required by {}", rules.api)));
        }
        fields::amount(self.net_amount, money.currency, money.code, &format!("{at}.netAmount"))?;
        if let Some(tax) = self.tax_amount {
            fields::amount(tax, money.currency, money.code, &format!("{at}.taxAmount"))?;
        }
        let account_ref = self.account_ref.map(Object::into_inner);
        let tax_rate_ref = self.tax_rate_ref.map(Object::into_inner);
        let item_ref = self.item_ref.map(Object::into_inner);
        if rules.account_or_item {
            match (&account_ref, &item_ref) {
                (None, None) => {
                    return Err(ValidationError::new(format!("{at}.accountRef"), "is required (or itemRef)"))
                }
                (Some(_), Some(_)) => {
                    return Err(ValidationError::new(
                        format!("{at}.itemRef"),
                        "cannot be given together with accountRef",
                    ))
                }
                _ => {}
            }
        }
        for (name, reference) in [("accountRef", &account_ref), ("taxRateRef", &tax_rate_ref), ("itemRef", &item_ref)] {
            if let Some(reference) = reference {
                fields::id(&reference.id, &format!("{at}.{name}.id"))?;
            }
        }
        let tracking_refs = tracking_refs(self.tracking_refs, at, |tracking, tracking_at| {
            only_allowed(tracking_at, rules.api, rules.tracking_fields, &[("dataType", tracking.data_type.is_some())])?;
            if tracking.data_type == Some(TrackingDataType::Suppliers) {
                return Err(ValidationError::new(
                    format!("{tracking_at}.dataType"),
                    "must be trackingCategories or customers (suppliers is for adjustment lines)",
                ));
            }
            Ok(())
        })?;
        let invoice_to = self.invoice_to.map(|b| b.into_inner().validate(at)).transpose()?;
        if let Some(description) = &self.description {
            fields::text(description, &format!("{at}.description"))?;
        }
        Ok(Line {
            net_amount: self.net_amount,
            tax_amount: self.tax_amount,
            tax_rate_ref,
            account_ref,
            tracking_refs,
            item_ref,
            invoice_to,
            description: self.description,
        })
    }
}

/// An item's id: Codat's transaction id, so canonical.
fn item_id(raw: &str, at: &str) -> Result<ExpenseId, ValidationError> {
    ExpenseId::parse_canonical(raw)
        .ok_or_else(|| ValidationError::new(format!("{at}.id"), "must be a canonical UUID (lowercase, hyphenated)"))
}

/// A line's `trackingRefs`: 1 to 10 references with valid ids, each also passing `check`.
fn tracking_refs(
    refs: Option<Vec<Object<Tracking>>>,
    at: &str,
    check: impl Fn(&Tracking, &str) -> Result<(), ValidationError>,
) -> Result<Option<Vec<Tracking>>, ValidationError> {
    let Some(refs) = refs else { return Ok(None) };
    let refs: Vec<Tracking> = refs.into_iter().map(Object::into_inner).collect();
    if refs.is_empty() || refs.len() > MAX_TRACKING_REFS {
        return Err(ValidationError::new(
            format!("{at}.trackingRefs"),
            format!("must hold 1 to {MAX_TRACKING_REFS} references when present"),
        ));
    }
    for (i, tracking) in refs.iter().enumerate() {
        let tracking_at = format!("{at}.trackingRefs[{i}]");
        fields::id(&tracking.id, &format!("{tracking_at}.id"))?;
        check(tracking, &tracking_at)?;
    }
    Ok(Some(refs))
}

impl RawBillTo {
    /// `invoiceTo` of the line at `at`: a customer.
    fn validate(self, at: &str) -> Result<BillTo, ValidationError> {
        fields::id(&self.id, &format!("{at}.invoiceTo.id"))?;
        if self.kind.as_deref().is_some_and(|k| k != "customer") {
            return Err(ValidationError::new(format!("{at}.invoiceTo.type"), "must be customer"));
        }
        Ok(BillTo { id: self.id })
    }
}

impl RawReceipt {
    fn validate(self, at: &str, rules: &IntakeRules) -> Result<Receipt, ValidationError> {
        let file_name = fields::file_name(&self.file_name, &format!("{at}.fileName"))?;
        let content_type = self.content_type.trim().to_ascii_lowercase();
        if !(fields::KNOWN_RECEIPT_TYPES.contains(&content_type.as_str())
            && rules.receipt_types.contains(&content_type.as_str()))
        {
            return Err(ValidationError::new(
                format!("{at}.contentType"),
                format!("must be one of {} under {}", rules.receipt_types.join(", "), rules.api),
            ));
        }
        let max = rules.max_receipt_bytes;
        // Bound the work before decoding: base64 grows data by a third.
        if self.data.len() > max / 3 * 4 + 4 {
            return Err(ValidationError::new(format!("{at}.data"), too_large(max, rules.api)));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.trim())
            .map_err(|_| ValidationError::new(format!("{at}.data"), "must be base64 (standard alphabet)"))?;
        if bytes.is_empty() {
            return Err(ValidationError::new(format!("{at}.data"), "must not be empty"));
        }
        if bytes.len() > max {
            return Err(ValidationError::new(format!("{at}.data"), too_large(max, rules.api)));
        }
        if !fields::is_file_of_type(&content_type, &bytes) {
            return Err(ValidationError::new(format!("{at}.data"), format!("is not a {content_type} file")));
        }
        Ok(Receipt { file_name, content_type, bytes })
    }
}

fn too_large(max: usize, api: &str) -> String {
    format!("receipt exceeds {max} bytes, the most every integration of {api} accepts")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::{json, Value};

    use crate::domain::fields::tests::PNG;

    pub(super) fn company() -> CompanyId {
        "8a210b68-6988-11ed-a1eb-0242ac120002".parse().unwrap()
    }

    pub(super) fn expense(id: &str) -> Value {
        json!({
            "id": id,
            "type": "Payment",
            "issueDate": "2024-05-21",
            "currency": "GBP",
            "merchantName": "Amazon UK",
            "lines": [{"netAmount": 110.42, "taxAmount": 14.43, "accountRef": {"id": "42"},
                       "trackingRefs": [{"id": "DEPARTMENT_6"}]}],
            "receipt": {"fileName": "taxi.png", "contentType": "image/png",
                        "data": base64::engine::general_purpose::STANDARD.encode(PNG)}
        })
    }

    /// A v1-like API: every field the parser knows, by v1's rules.
    pub(super) const RULES: IntakeRules = IntakeRules {
        api: "the test API",
        expense_types: &[TransactionKind::Payment, TransactionKind::Refund],
        expense_fields: &["currencyRate", "contactRef", "merchantName", "notes"],
        line_fields: &["taxAmount", "taxRateRef", "accountRef", "trackingRefs"],
        line_requires: &["taxAmount", "accountRef"],
        account_or_item: false,
        contact_type_field: "contactType",
        tracking_fields: &[],
        reimbursable_fields: None,
        reimbursable_line_fields: &[],
        receipt_types: &["application/pdf", "image/png"],
        max_receipt_bytes: 1024,
        transfers_and_adjustments: false,
    };

    fn parse(body: Value) -> Result<ApprovalBatch, ValidationError> {
        ApprovalBatch::parse(company(), body.to_string().as_bytes(), &RULES)
    }

    fn field_of(body: Value) -> String {
        parse(body).unwrap_err().field
    }

    const ID: &str = "4d7c6929-7770-412b-91bb-44d3bc71d111";

    #[test]
    fn valid_batch_becomes_codat_transaction_and_receipt() {
        let batch = parse(json!({"expenses": [expense(ID)]})).unwrap();
        let expense = &batch.expenses[0];
        assert_eq!(expense.id().to_string(), ID);
        assert_eq!(expense.entry.as_transaction().unwrap().issue_date, "2024-05-21T00:00:00Z");
        assert_eq!(expense.entry.as_transaction().unwrap().lines[0].net_amount.to_string(), "110.42");
        assert_eq!(expense.receipt.as_ref().unwrap().bytes, PNG);
        let stored = serde_json::to_value(expense.entry.as_transaction().unwrap()).unwrap();
        // Stored as exact decimal text (DynamoDB strings); Codat's bodies get JSON numbers.
        assert_eq!(stored["lines"][0]["netAmount"], json!("110.42"));
        assert_eq!(stored["lines"][0]["accountRef"]["id"], "42");
        assert_eq!(stored["type"], "Payment");
        assert!(stored.get("receipt").is_none());
    }

    #[test]
    fn missing_field_is_named_with_its_path() {
        let mut e = expense(ID);
        e.as_object_mut().unwrap().remove("currency");
        assert_eq!(field_of(json!({"expenses": [expense(ID), e]})), "expenses[1].currency");
    }

    #[test]
    fn trailing_data_and_malformed_numbers_are_refused_naming_where() {
        let body = json!({"expenses": [expense(ID)]}).to_string();
        for trailing in [format!("{body} {{}}"), format!("{body}x"), format!("{body}{body}")] {
            let err = ApprovalBatch::parse(company(), trailing.as_bytes(), &RULES).unwrap_err();
            assert_eq!(err.field, "body", "{err}");
            assert!(err.message.contains("trailing data"), "{err}");
        }
        let malformed = body.replace("110.42", "110.4.2");
        let err = ApprovalBatch::parse(company(), malformed.as_bytes(), &RULES).unwrap_err();
        assert!(!err.field.contains('?') && err.field.starts_with("expenses"), "{err}");
        assert!(err.message.contains("malformed JSON") && err.message.contains("line 1"), "{err}");
        // Inside an object, before its next key is read.
        let unfinished = body.replace("\"netAmount\"", "\"netAmount\" 1,");
        let err = ApprovalBatch::parse(company(), unfinished.as_bytes(), &RULES).unwrap_err();
        assert!(!err.field.contains('?'), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let mut e = expense(ID);
        e["lines"][0]["netAmount"] = json!("lots");
        assert_eq!(field_of(json!({"expenses": [e]})), "expenses[0].lines[0].netAmount");
    }

    #[test]
    fn unknown_transaction_type_is_refused() {
        let mut e = expense(ID);
        e["type"] = json!("Gift");
        assert_eq!(field_of(json!({"expenses": [e]})), "expenses[0].type");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("expenses[0].id", Box::new(|e| e["id"] = json!("not-a-uuid"))),
            ("expenses[0].issueDate", Box::new(|e| e["issueDate"] = json!("21/05/2024"))),
            ("expenses[0].currency", Box::new(|e| e["currency"] = json!("gbp"))),
            ("expenses[0].currencyRate", Box::new(|e| e["currencyRate"] = json!(0))),
            ("expenses[0].lines", Box::new(|e| e["lines"] = json!([]))),
            ("expenses[0].lines[0].accountRef.id", Box::new(|e| e["lines"][0]["accountRef"]["id"] = json!(" "))),
            ("expenses[0].lines[0].trackingRefs", Box::new(|e| e["lines"][0]["trackingRefs"] = json!([]))),
            ("expenses[0].receipt.fileName", Box::new(|e| e["receipt"]["fileName"] = json!("../etc/passwd"))),
            ("expenses[0].receipt.contentType", Box::new(|e| e["receipt"]["contentType"] = json!("text/html"))),
            ("expenses[0].receipt.data", Box::new(|e| e["receipt"]["data"] = json!("***"))),
            ("expenses[0].receipt.data", Box::new(|e| e["receipt"]["contentType"] = json!("application/pdf"))),
            (
                "expenses[0].receipt",
                Box::new(|e| {
                    e.as_object_mut().unwrap().remove("receipt");
                }),
            ),
            ("expenses[0].surprise", Box::new(|e| e["surprise"] = json!(1))),
        ];
        for (field, mutate) in cases {
            let mut e = expense(ID);
            mutate(&mut e);
            let err = parse(json!({"expenses": [e]})).unwrap_err();
            assert!(err.field.starts_with(field), "expected {field}, got {err}");
        }
    }

    #[test]
    fn batch_bounds_and_duplicates() {
        assert_eq!(field_of(json!({"expenses": []})), "expenses");
        assert_eq!(field_of(json!({})), "expenses");
        assert_eq!(field_of(json!({"expenses": [expense(ID), expense(ID)]})), "expenses[1].id");
        let many: Vec<Value> = (0..=MAX_BATCH).map(|_| expense(&uuid::Uuid::new_v4().to_string())).collect();
        assert_eq!(field_of(json!({"expenses": many})), "expenses");
        assert_eq!(ApprovalBatch::parse(company(), b"not json", &RULES).unwrap_err().field, "body");
    }

    #[test]
    fn the_rules_decide_types_fields_and_receipts() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, &str, Mutation)> = vec![
            ("expenses[0].type", "must be one of Payment, Refund", Box::new(|e| e["type"] = json!("TransferIn"))),
            ("expenses[0].bankAccountRef", "not accepted", Box::new(|e| e["bankAccountRef"] = json!({"id": "9"}))),
            ("expenses[0].postAsDraft", "not accepted", Box::new(|e| e["postAsDraft"] = json!(true))),
            (
                "expenses[0].lines[0].itemRef",
                "not accepted",
                Box::new(|e| e["lines"][0]["itemRef"] = json!({"id": "1"})),
            ),
            (
                "expenses[0].lines[0].taxAmount",
                "required",
                Box::new(|e| {
                    e["lines"][0].as_object_mut().unwrap().remove("taxAmount");
                }),
            ),
            (
                "expenses[0].lines[0].trackingRefs[0].dataType",
                "not accepted",
                Box::new(|e| e["lines"][0]["trackingRefs"][0]["dataType"] = json!("customers")),
            ),
            (
                "expenses[0].contactRef.type",
                "not accepted",
                Box::new(|e| e["contactRef"] = json!({"id": "1", "type": "Supplier"})),
            ),
            (
                "expenses[0].receipt.contentType",
                "image/png",
                Box::new(|e| e["receipt"]["contentType"] = json!("image/gif")),
            ),
            (
                "expenses[0].receipt.data",
                "exceeds 1024 bytes",
                Box::new(|e| {
                    let big = [PNG, &[0u8; 2000]].concat();
                    e["receipt"]["data"] = json!(base64::engine::general_purpose::STANDARD.encode(big));
                }),
            ),
        ];
        for (field, words, mutate) in cases {
            let mut e = expense(ID);
            mutate(&mut e);
            let err = parse(json!({"expenses": [e]})).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(words), "{err}");
        }
        let mut supplier = expense(ID);
        supplier["contactRef"] = json!({"id": "1", "contactType": "Supplier"});
        let parsed = parse(json!({"expenses": [supplier]})).unwrap();
        assert_eq!(
            parsed.expenses[0].entry.as_transaction().unwrap().contact_ref.as_ref().unwrap().contact_type,
            Some(ContactType::Supplier)
        );
        let reimbursable = json!({"reimbursableExpenses": [expense(ID)]});
        assert_eq!(field_of(reimbursable), "reimbursableExpenses");
    }

    /// The hostile inputs of issue 14, each refused naming its field.
    #[test]
    fn hostile_input_is_refused_naming_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let webm_as_webp = base64::engine::general_purpose::STANDARD.encode(b"RIFF\x24\0\0\0WAVEfmt audio");
        let cases: Vec<(&str, Mutation)> = vec![
            ("expenses[1].lines[0].accountRef", Box::new(|e| e["lines"][0]["accountRef"] = json!(["42"]))),
            ("expenses[1].lines[0].trackingRefs[0]", Box::new(|e| e["lines"][0]["trackingRefs"] = json!([["x"]]))),
            ("expenses[1].contactRef", Box::new(|e| e["contactRef"] = json!(["SUP-1", "Supplier"]))),
            ("expenses[1].receipt", Box::new(|e| e["receipt"] = json!(["taxi.png", "image/png", "iVBO"]))),
            ("expenses[1].lines[0]", Box::new(|e| e["lines"] = json!([[110.42, 14.43]]))),
            ("expenses[1].currency", Box::new(|e| e["currency"] = json!("ABC"))),
            ("expenses[1].currency", Box::new(|e| e["currency"] = json!("XAU"))),
            ("expenses[1].lines[0].netAmount", Box::new(|e| e["lines"][0]["netAmount"] = json!(1.234))),
            ("expenses[1].lines[0].netAmount", Box::new(|e| e["lines"][0]["netAmount"] = json!(9e27))),
            ("expenses[1].lines[0].taxAmount", Box::new(|e| e["lines"][0]["taxAmount"] = json!(1.8e19))),
            ("expenses[1].lines[0].netAmount", Box::new(|e| e["lines"][0]["netAmount"] = json!("110.42"))),
            ("expenses[1].id", Box::new(|e| e["id"] = json!(ID.to_uppercase()))),
            ("expenses[1].id", Box::new(|e| e["id"] = json!(format!("{{{ID}}}")))),
            ("expenses[1].issueDate", Box::new(|e| e["issueDate"] = json!("+12345-01-01"))),
            ("expenses[1].issueDate", Box::new(|e| e["issueDate"] = json!("0000-01-01"))),
            ("expenses[1].receipt.fileName", Box::new(|e| e["receipt"]["fileName"] = json!("taxi\u{202E}gnp.exe"))),
            (
                "expenses[1].lines[0].accountRef.id",
                Box::new(|e| e["lines"][0]["accountRef"]["id"] = json!("7".repeat(420_000))),
            ),
        ];
        for (field, mutate) in cases {
            let mut bad = expense(ID);
            mutate(&mut bad);
            let sibling = expense("0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01");
            let err = parse(json!({"expenses": [sibling, bad]})).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let mut webp_rules = RULES;
        webp_rules.receipt_types = &["image/webp"];
        let mut audio = expense(ID);
        audio["receipt"] = json!({"fileName": "a.webp", "contentType": "image/webp", "data": webm_as_webp});
        let body = json!({"expenses": [audio]}).to_string();
        let err = ApprovalBatch::parse(company(), body.as_bytes(), &webp_rules).unwrap_err();
        assert_eq!(err.field, "expenses[0].receipt.data", "{err}");
    }

    #[test]
    fn amounts_reach_the_transaction_with_exactly_their_digits() {
        let mut e = expense(ID);
        e["lines"][0]["netAmount"] = json!("__NET__");
        let body = json!({"expenses": [e]}).to_string().replace("\"__NET__\"", "1234567890123.45");
        let batch = ApprovalBatch::parse(company(), body.as_bytes(), &RULES).unwrap();
        assert_eq!(
            batch.expenses[0].entry.as_transaction().unwrap().lines[0].net_amount.to_string(),
            "1234567890123.45"
        );
    }

    #[test]
    fn an_expense_too_large_to_store_is_refused_before_anything_is_written() {
        let mut e = expense(ID);
        e["lines"] = json!((0..100)
            .map(|_| json!({"netAmount": 1, "taxAmount": 0, "accountRef": {"id": "é".repeat(255)},
                            "trackingRefs": (0..10).map(|_| json!({"id": "é".repeat(255)})).collect::<Vec<_>>()}))
            .collect::<Vec<_>>());
        // Every field is within its own limit; together they exceed what one item holds.
        let Err(err) = parse(json!({"expenses": [expense("0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01"), e]})) else {
            panic!("an expense over the item limit was accepted");
        };
        assert_eq!(err.field, "expenses[1]", "{err}");
        assert!(err.message.contains("when stored"), "{err}");
    }

    /// Records written while amounts were floats hold numbers and a float-era fingerprint: a
    /// replay of their approval is still recognised, and a change still is not.
    #[test]
    fn a_replay_of_a_record_stored_with_float_amounts_is_recognised() {
        let approved = parse(json!({"expenses": [expense(ID)]})).unwrap().expenses.remove(0);
        let mut transaction = serde_json::to_value(approved.entry.as_transaction().unwrap()).unwrap();
        transaction["lines"][0]["netAmount"] = json!(110.42);
        transaction["lines"][0]["taxAmount"] = json!(14.43);
        let legacy: crate::domain::Expense = serde_json::from_value(json!({
            "companyId": company(), "expenseId": ID, "status": "uploaded", "transaction": transaction,
            "receipt": {"key": "receipts/k", "fileName": "taxi.png", "contentType": "image/png",
                        "size": PNG.len(), "sha256": approved.receipt.as_ref().unwrap().sha256_hex()},
            "fingerprint": "computed-over-floats", "approvedAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert!(legacy.is_approval_of(&approved));
        let mut changed = expense(ID);
        changed["lines"][0]["netAmount"] = json!(110.43);
        let changed = parse(json!({"expenses": [changed]})).unwrap().expenses.remove(0);
        assert!(!legacy.is_approval_of(&changed));
    }

    #[test]
    fn fingerprint_tells_replays_from_conflicts() {
        let a = parse(json!({"expenses": [expense(ID)]})).unwrap().expenses.remove(0);
        let again = parse(json!({"expenses": [expense(ID)]})).unwrap().expenses.remove(0);
        let mut changed = expense(ID);
        changed["lines"][0]["netAmount"] = json!(1);
        let other = parse(json!({"expenses": [changed]})).unwrap().expenses.remove(0);
        assert_eq!(a.fingerprint(), again.fingerprint());
        assert_ne!(a.fingerprint(), other.fingerprint());
    }

    #[test]
    fn debug_output_never_carries_receipt_bytes() {
        let a = parse(json!({"expenses": [expense(ID)]})).unwrap();
        let debug = format!("{a:?}");
        assert!(debug.contains(&format!("len: {}", PNG.len())), "{debug}");
        assert!(!debug.contains("bytes"), "{debug}");
    }
}
