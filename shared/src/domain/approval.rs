//! Approval intake: parse a batch of approved expenses into valid domain values, or name the
//! first field that is wrong. Nothing downstream re-checks what is checked here.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{CompanyId, ExpenseId};
use crate::codat::{ContactRef, ExpenseTransaction, ExpenseTransactionLine, RecordRef, TransactionType};

/// At most this many expenses in one approval request (split into datasets of 50).
pub const MAX_BATCH: usize = 100;
/// Largest receipt accepted, decoded. API Gateway caps the whole request at 10 MB.
pub const MAX_RECEIPT_BYTES: usize = 4 * 1024 * 1024;
const MAX_LINES: usize = 100;
const MAX_TRACKING_REFS: usize = 10;
const MAX_TEXT: usize = 1000;

/// A receipt content type we accept, with the magic bytes its file must start with.
const RECEIPT_TYPES: &[(&str, &[&[u8]])] = &[
    ("application/pdf", &[b"%PDF-"]),
    ("image/png", &[b"\x89PNG\r\n\x1a\n"]),
    ("image/jpeg", &[b"\xff\xd8\xff"]),
    ("image/gif", &[b"GIF87a", b"GIF89a"]),
    ("image/webp", &[b"RIFF"]),
];

/// A request field that is missing or wrong: the HTTP edge answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON path of the offending field, e.g. `expenses[1].lines[0].accountRef.id`.
    pub field: String,
    pub message: String,
}

impl ValidationError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
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

/// One approved expense: the Codat transaction to create plus its receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedExpense {
    pub transaction: ExpenseTransaction,
    pub receipt: Receipt,
}

impl ApprovedExpense {
    pub fn id(&self) -> ExpenseId {
        self.transaction.id
    }

    /// Identifies the content of an approval, so a re-post of the same expense is recognised
    /// and a different expense reusing its id is refused.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&self.transaction).expect("transaction serializes"));
        hasher.update(self.receipt.file_name.as_bytes());
        hasher.update([0]);
        hasher.update(self.receipt.content_type.as_bytes());
        hasher.update([0]);
        hasher.update(&self.receipt.bytes);
        hex(&hasher.finalize())
    }
}

/// A valid batch of approved expenses for one company.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalBatch {
    pub company_id: CompanyId,
    pub expenses: Vec<ApprovedExpense>,
}

impl ApprovalBatch {
    /// Parses the approval request body: `{"expenses": [...]}`.
    pub fn parse(company_id: CompanyId, body: &[u8]) -> Result<Self, ValidationError> {
        let raw: RawBatch = parse_json(body)?;
        if raw.expenses.is_empty() {
            return Err(ValidationError::new("expenses", "must hold at least one expense"));
        }
        if raw.expenses.len() > MAX_BATCH {
            return Err(ValidationError::new(
                "expenses",
                format!("holds {} expenses; at most {MAX_BATCH} per request", raw.expenses.len()),
            ));
        }
        let mut seen = HashSet::new();
        let mut expenses = Vec::with_capacity(raw.expenses.len());
        for (index, raw_expense) in raw.expenses.into_iter().enumerate() {
            let at = format!("expenses[{index}]");
            let expense = raw_expense.validate(&at)?;
            if !seen.insert(expense.id()) {
                return Err(ValidationError::new(
                    format!("{at}.id"),
                    format!("{} appears more than once in this batch", expense.id()),
                ));
            }
            expenses.push(expense);
        }
        Ok(Self { company_id, expenses })
    }
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ValidationError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde reports a missing field against its parent object: name the field itself.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            let field_path = if path == "." { field.to_string() } else { format!("{path}.{field}") };
            return ValidationError::new(field_path, "is required");
        }
        let field = if path == "." { "body".to_string() } else { path };
        let message = strip_position(&message);
        ValidationError::new(field, message)
    })
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    expenses: Vec<RawExpense>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawExpense {
    id: String,
    #[serde(rename = "type")]
    kind: TransactionType,
    issue_date: String,
    currency: String,
    currency_rate: Option<Decimal>,
    contact_ref: Option<ContactRef>,
    merchant_name: Option<String>,
    lines: Vec<RawLine>,
    notes: Option<String>,
    receipt: RawReceipt,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLine {
    net_amount: Decimal,
    tax_amount: Decimal,
    account_ref: RecordRef,
    tax_rate_ref: Option<RecordRef>,
    tracking_refs: Option<Vec<RecordRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawReceipt {
    file_name: String,
    content_type: String,
    /// Base64 (standard alphabet) of the file.
    data: String,
}

impl RawExpense {
    fn validate(self, at: &str) -> Result<ApprovedExpense, ValidationError> {
        let id: ExpenseId = self.id.parse().map_err(|_| ValidationError::new(format!("{at}.id"), "must be a UUID"))?;
        let issue_date = canonical_date(&self.issue_date).ok_or_else(|| {
            ValidationError::new(
                format!("{at}.issueDate"),
                "must be an ISO 8601 date or date-time, e.g. 2024-05-21 or 2024-05-21T00:00:00Z",
            )
        })?;
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(ValidationError::new(format!("{at}.currency"), "must be an ISO 4217 code such as GBP"));
        }
        if let Some(rate) = self.currency_rate {
            if rate <= Decimal::ZERO {
                return Err(ValidationError::new(format!("{at}.currencyRate"), "must be greater than 0"));
            }
        }
        if let Some(contact) = &self.contact_ref {
            non_blank(&contact.id, &format!("{at}.contactRef.id"))?;
        }
        if let Some(name) = &self.merchant_name {
            bounded_text(name, &format!("{at}.merchantName"))?;
        }
        if let Some(notes) = &self.notes {
            bounded_text(notes, &format!("{at}.notes"))?;
        }
        if self.lines.is_empty() || self.lines.len() > MAX_LINES {
            return Err(ValidationError::new(format!("{at}.lines"), format!("must hold 1 to {MAX_LINES} lines")));
        }
        let lines = self
            .lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| line.validate(&format!("{at}.lines[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let receipt = self.receipt.validate(&format!("{at}.receipt"))?;
        Ok(ApprovedExpense {
            transaction: ExpenseTransaction {
                id,
                kind: self.kind,
                issue_date,
                currency: self.currency,
                currency_rate: self.currency_rate,
                contact_ref: self.contact_ref,
                merchant_name: self.merchant_name,
                lines,
                notes: self.notes,
            },
            receipt,
        })
    }
}

impl RawLine {
    fn validate(self, at: &str) -> Result<ExpenseTransactionLine, ValidationError> {
        non_blank(&self.account_ref.id, &format!("{at}.accountRef.id"))?;
        if let Some(tax_rate) = &self.tax_rate_ref {
            non_blank(&tax_rate.id, &format!("{at}.taxRateRef.id"))?;
        }
        if let Some(refs) = &self.tracking_refs {
            if refs.is_empty() || refs.len() > MAX_TRACKING_REFS {
                return Err(ValidationError::new(
                    format!("{at}.trackingRefs"),
                    format!("must hold 1 to {MAX_TRACKING_REFS} references when present"),
                ));
            }
            for (i, tracking) in refs.iter().enumerate() {
                non_blank(&tracking.id, &format!("{at}.trackingRefs[{i}].id"))?;
            }
        }
        Ok(ExpenseTransactionLine {
            net_amount: self.net_amount,
            tax_amount: self.tax_amount,
            tax_rate_ref: self.tax_rate_ref,
            account_ref: self.account_ref,
            tracking_refs: self.tracking_refs,
        })
    }
}

impl RawReceipt {
    fn validate(self, at: &str) -> Result<Receipt, ValidationError> {
        let name = self.file_name.trim();
        if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(ValidationError::new(
                format!("{at}.fileName"),
                "must be a plain file name of 1 to 255 characters",
            ));
        }
        let content_type = self.content_type.trim().to_ascii_lowercase();
        let Some((_, magics)) = RECEIPT_TYPES.iter().find(|(t, _)| *t == content_type) else {
            let allowed: Vec<&str> = RECEIPT_TYPES.iter().map(|(t, _)| *t).collect();
            return Err(ValidationError::new(
                format!("{at}.contentType"),
                format!("must be one of {}", allowed.join(", ")),
            ));
        };
        // Bound the work before decoding: base64 grows data by a third.
        if self.data.len() > MAX_RECEIPT_BYTES / 3 * 4 + 4 {
            return Err(ValidationError::new(
                format!("{at}.data"),
                format!("receipt exceeds {MAX_RECEIPT_BYTES} bytes"),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.trim())
            .map_err(|_| ValidationError::new(format!("{at}.data"), "must be base64 (standard alphabet)"))?;
        if bytes.is_empty() {
            return Err(ValidationError::new(format!("{at}.data"), "must not be empty"));
        }
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(ValidationError::new(
                format!("{at}.data"),
                format!("receipt exceeds {MAX_RECEIPT_BYTES} bytes"),
            ));
        }
        if !magics.iter().any(|magic| bytes.starts_with(magic)) {
            return Err(ValidationError::new(format!("{at}.data"), format!("is not a {content_type} file")));
        }
        Ok(Receipt { file_name: name.to_string(), content_type, bytes })
    }
}

fn non_blank(value: &str, field: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    Ok(())
}

fn bounded_text(value: &str, field: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_TEXT {
        return Err(ValidationError::new(field, format!("must be at most {MAX_TEXT} characters")));
    }
    Ok(())
}

/// Accepts `YYYY-MM-DD` or an RFC 3339 date-time, and returns Codat's date-time form.
fn canonical_date(value: &str) -> Option<String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d")));
    }
    chrono::DateTime::parse_from_rfc3339(value).ok().map(|dt| dt.to_rfc3339())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest-of-png";

    fn company() -> CompanyId {
        "8a210b68-6988-11ed-a1eb-0242ac120002".parse().unwrap()
    }

    fn expense(id: &str) -> Value {
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

    fn parse(body: Value) -> Result<ApprovalBatch, ValidationError> {
        ApprovalBatch::parse(company(), body.to_string().as_bytes())
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
        assert_eq!(expense.transaction.issue_date, "2024-05-21T00:00:00Z");
        assert_eq!(expense.transaction.lines[0].net_amount.to_string(), "110.42");
        assert_eq!(expense.receipt.bytes, PNG);
        let codat = serde_json::to_value(&expense.transaction).unwrap();
        assert_eq!(codat["lines"][0]["netAmount"], json!(110.42));
        assert_eq!(codat["lines"][0]["accountRef"]["id"], "42");
        assert_eq!(codat["type"], "Payment");
        assert!(codat.get("receipt").is_none());
    }

    #[test]
    fn missing_field_is_named_with_its_path() {
        let mut e = expense(ID);
        e.as_object_mut().unwrap().remove("currency");
        assert_eq!(field_of(json!({"expenses": [expense(ID), e]})), "expenses[1].currency");
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
        assert_eq!(ApprovalBatch::parse(company(), b"not json").unwrap_err().field, "body");
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
