//! The current Expenses API's create endpoints (`Codat-Sync-Expenses-current.yaml`).
//!
//! `POST .../expense-transactions` and `POST .../reimbursable-expense-transactions` take a bare
//! array of 1–50 transactions; Codat stores them, creates and queues their sync itself and
//! answers 200 `{syncId}`. The sync-status, transactions and attachment endpoints they share
//! with v1 live in `syncs.rs`; adjustments (`transfers.rs`) use the same batch create.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::errors::{company_not_found, invalid, item_error, parse_uuid};
use crate::exact;
use crate::state::{Company, Shared, SyncKind, Txn, TxnKind, TxnStatus};
use crate::validate::{self, Errors, Presence};

/// Since 2024 Codat refuses the transfer and adjustment types here (they have their own endpoints).
pub const EXPENSE_TYPES: &[&str] = &["Payment", "Refund", "Reward", "Chargeback"];

pub fn routes(state: Arc<Shared>) -> Router {
    let base = "/companies/{companyId}/sync/expenses";
    Router::new()
        .route(&format!("{base}/expense-transactions"), post(create_expenses))
        .route(&format!("{base}/reimbursable-expense-transactions"), post(create_reimbursables))
        .with_state(state)
}

async fn create_expenses(State(shared): State<Arc<Shared>>, Path(company): Path<String>, body: Bytes) -> Response {
    create_batch(&shared, &company, &body, TxnKind::Expense, |item, raw, at, errors| {
        let id = expense_transaction(item, at, errors);
        exact_amounts(raw, at, errors);
        id
    })
}

async fn create_reimbursables(State(shared): State<Arc<Shared>>, Path(company): Path<String>, body: Bytes) -> Response {
    create_batch(&shared, &company, &body, TxnKind::Reimbursable, |item, raw, at, errors| {
        let id = reimbursable_transaction(item, at, errors);
        exact_amounts(raw, at, errors);
        id
    })
}

/// Exact amounts: what a float or a .NET decimal would round is refused, by field.
fn exact_amounts(raw: &RawValue, at: &str, errors: &mut Errors) {
    for message in exact::amount_errors(raw) {
        errors.push(at, message);
    }
}

/// Checks one transaction of a batch (as a `Value` and as its exact text) with the prefix `at`
/// (`[0].`); returns its id.
pub type Check = fn(&Value, &RawValue, &str, &mut Errors) -> Option<String>;

/// A current-API create: a bare array of 1–50 transactions, each checked by `check`, whose ids
/// are new for the company. Stores them, queues their sync and answers 200 `{syncId}`.
pub fn create_batch(shared: &Arc<Shared>, company: &str, body: &[u8], kind: TxnKind, check: Check) -> Response {
    let Some(company) = parse_uuid(company) else { return company_not_found() };
    let raw_items = match exact::parse(body).map(|raw| exact::elements(&raw)) {
        Ok(Some(items)) if (1..=50).contains(&items.len()) => items,
        Ok(Some(items)) => {
            return invalid(vec![item_error(
                None,
                format!("The body must hold 1 to 50 transactions, got {}", items.len()),
            )])
        }
        Ok(None) => return invalid(vec![item_error(None, "The body must be a JSON array of transactions".into())]),
        Err(e) => return invalid(vec![item_error(None, format!("The body is not valid JSON: {e}"))]),
    };
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut items = Vec::new();
    for (index, raw) in raw_items.iter().enumerate() {
        let at = format!("[{index}].");
        let item = match exact::value(raw) {
            Ok(item) => item,
            Err(e) => {
                errors.push(item_error(None, format!("[{index}] is not valid JSON: {e}")));
                continue;
            }
        };
        let mut found = Errors::default();
        let id = check(&item, raw, &at, &mut found);
        let item_id = item.get("id").and_then(Value::as_str);
        errors.extend(found.messages.into_iter().map(|m| item_error(item_id, m)));
        ids.extend(id);
        items.push(item);
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let mut inner = shared.lock();
    let generation = inner.generation;
    let state = inner.companies.entry(company.clone()).or_default();
    let errors = reused_ids(state, &ids);
    if !errors.is_empty() {
        return invalid(errors);
    }
    let sync_id = state.add_sync(SyncKind::Current, Vec::new(), ids.clone());
    for ((id, body), raw) in ids.into_iter().zip(items).zip(raw_items) {
        let sync_id = Some(sync_id.clone());
        let txn = Txn { body, raw, kind, status: TxnStatus::Pending, message: None, sync_id };
        state.transactions.insert(id, txn);
    }
    state.create_calls += 1;
    let start_worker = state.enqueue(sync_id.clone());
    drop(inner);
    queued(shared, company, generation, start_worker, sync_id)
}

/// The answer to a create that queued `sync_id`: `200 {syncId}`, with the company's sync
/// worker started when none was running. Called once the state lock is released.
pub(crate) fn queued(
    shared: &Arc<Shared>,
    company: String,
    generation: u64,
    start_worker: bool,
    sync_id: String,
) -> Response {
    if start_worker {
        tokio::spawn(crate::runner::drain_queue(shared.clone(), company, generation));
    }
    (StatusCode::OK, Json(json!({"syncId": sync_id}))).into_response()
}

/// A transaction id is Codat's idempotency key: one already used for the company, by either
/// API and any endpoint, or given twice in one request, is refused.
pub fn reused_ids(state: &Company, ids: &[String]) -> Vec<Value> {
    let mut seen = HashSet::new();
    ids.iter()
        .filter(|id| state.transactions.contains_key(*id) || !seen.insert(id.as_str()))
        .map(|id| item_error(Some(id), format!("Transaction id {id} has already been used for this company")))
        .collect()
}

/// `ExpenseTransaction`; returns its id when it is valid.
fn expense_transaction(item: &Value, at: &str, errors: &mut Errors) -> Option<String> {
    let Some(object) = item.as_object() else {
        errors.push(at, "must be an ExpenseTransaction object");
        return None;
    };
    const KNOWN: &[&str] = &[
        "id",
        "type",
        "issueDate",
        "currency",
        "currencyRate",
        "contactRef",
        "bankAccountRef",
        "reference",
        "merchantName",
        "lines",
        "notes",
        "postAsDraft",
    ];
    validate::known_properties(object, KNOWN, "ExpenseTransaction", at, errors);
    let id = validate::uuid(object, "id", at, errors);
    validate::one_of(object, "type", EXPENSE_TYPES, Presence::Required, at, errors);
    validate::date_time(object, "issueDate", Presence::Required, at, errors);
    validate::string(object, "currency", Presence::Required, at, errors);
    validate::number(object, "currencyRate", Presence::Nullable, at, errors);
    let contact_types: &[(&str, &[&str])] = &[("type", &["Supplier"])];
    validate::reference(object, "contactRef", "ExpenseContactRef", contact_types, Presence::Optional, at, errors);
    validate::reference(object, "bankAccountRef", "BankAccountRef", &[], Presence::Optional, at, errors);
    validate::string(object, "reference", Presence::Nullable, at, errors);
    validate::string(object, "merchantName", Presence::Optional, at, errors);
    validate::string(object, "notes", Presence::Optional, at, errors);
    validate::boolean(object, "postAsDraft", Presence::Nullable, at, errors);
    validate::array(object, "lines", (1, 100), Presence::Optional, at, errors, |line, at, errors| {
        validate::line(line, false, at, errors)
    });
    id.filter(|_| errors.is_empty())
}

/// `ReimbursableExpenseTransactionRequest/definitions/reimbursableExpenseTransaction`.
fn reimbursable_transaction(item: &Value, at: &str, errors: &mut Errors) -> Option<String> {
    let Some(object) = item.as_object() else {
        errors.push(at, "must be a reimbursable expense transaction object");
        return None;
    };
    const KNOWN: &[&str] = &[
        "id",
        "reference",
        "contactRef",
        "apAccountRef",
        "issueDate",
        "dueDate",
        "currency",
        "currencyRate",
        "notes",
        "lines",
    ];
    validate::known_properties(object, KNOWN, "ReimbursableExpenseTransaction", at, errors);
    let id = validate::uuid(object, "id", at, errors);
    validate::string(object, "reference", Presence::Nullable, at, errors);
    validate::reference(object, "contactRef", "ReimbursementContactRef", &[], Presence::Required, at, errors);
    validate::reference(object, "apAccountRef", "apAccountRef", &[], Presence::Nullable, at, errors);
    validate::date_time(object, "issueDate", Presence::Required, at, errors);
    validate::date_time(object, "dueDate", Presence::Required, at, errors);
    validate::string(object, "currency", Presence::Required, at, errors);
    validate::number(object, "currencyRate", Presence::Nullable, at, errors);
    validate::string(object, "notes", Presence::Optional, at, errors);
    validate::array(object, "lines", (1, 100), Presence::Optional, at, errors, |line, at, errors| {
        validate::line(line, true, at, errors)
    });
    id.filter(|_| errors.is_empty())
}
