//! The current Expenses API's transfer and adjustment endpoints (`Codat-Sync-Expenses-current.yaml`).
//!
//! - `PUT .../transfer-transactions/{transactionId}`: one `TransferTransactionRequest` (`date`,
//!   `from` and `to` each `{accountRef{id}, amount}`, optional `description`; the id is the
//!   path's). The YAML says it creates *or updates* the transfer and answers 200 `{syncId}`, so
//!   every accepted PUT is a new sync. It is silent on a PUT repeating the same content: the
//!   sandbox takes that as a new sync of the same transfer (a resend), different content as an
//!   update, and counts creates, resends and updates per id (`/_sandbox/stats`, `transfers`).
//!   An id another endpoint used is refused, as everywhere.
//! - `POST .../adjustment-transactions`: a bare array of 1–50 `AdjustmentTransactionRequest`
//!   (`CreateAdjustmentRequest`), answered 200 `{syncId}` like the expense creates.
//!
//! When the sync runs, each is Completed unless one of these rules, taken from the YAML's own
//! words, makes it a ValidationError:
//! - a transfer moves money *between two accounts*: `from` and `to` must be different accounts,
//!   and each amount "that has been transferred" must be greater than zero;
//! - an adjustment is a journal entry ("a positive line represents a debit; a negative line
//!   represents a credit"): its lines must total exactly zero.
//!
//! Neither takes an attachment (`attachments.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{post, put};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::errors::{company_not_found, invalid, item_error, parse_uuid};
use crate::exact;
use crate::expenses::{create_batch, queued, reused_ids};
use crate::runner::shown;
use crate::state::{Shared, SyncKind, TransferWrite, Txn, TxnKind, TxnStatus};
use crate::validate::{self, Errors, Presence};

type AppState = State<Arc<Shared>>;

/// Where a transfer's and an adjustment's amounts are, for the exact-money checks.
const TRANSFER_AMOUNTS: &[&str] = &["from.amount", "to.amount"];
const ADJUSTMENT_AMOUNTS: &[&str] = &["currencyRate", "lines[].amount"];

/// `TrackingRefAdjustmentTransaction` may also link a supplier.
const ADJUSTMENT_TRACKING_TYPES: &[&str] = &["trackingCategories", "customers", "suppliers"];

pub fn routes(state: Arc<Shared>) -> Router {
    let base = "/companies/{companyId}/sync/expenses";
    Router::new()
        .route(&format!("{base}/transfer-transactions/{{transactionId}}"), put(put_transfer))
        .route(&format!("{base}/adjustment-transactions"), post(create_adjustments))
        .with_state(state)
}

async fn put_transfer(
    State(shared): AppState,
    Path((company, transaction_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    let Some(id) = parse_uuid(&transaction_id) else {
        return invalid(vec![item_error(None, format!("transactionId must be a uuid, got {transaction_id}"))]);
    };
    let (raw, body) = match transfer_request(&body) {
        Ok(valid) => valid,
        Err(messages) => return invalid(messages.into_iter().map(|m| item_error(Some(&id), m)).collect()),
    };
    let mut inner = shared.lock();
    let generation = inner.generation;
    let state = inner.companies.entry(company.clone()).or_default();
    let write = match state.transactions.get(&id) {
        None => TransferWrite::Create,
        Some(used) if used.kind != TxnKind::Transfer => return invalid(reused_ids(state, &[id])),
        Some(earlier) if same_content(&earlier.raw, &raw) => TransferWrite::Resend,
        Some(_) => TransferWrite::Update,
    };
    let sync_id = state.add_sync(SyncKind::Current, Vec::new(), vec![id.clone()]);
    let txn = Txn {
        body,
        raw,
        kind: TxnKind::Transfer,
        status: TxnStatus::Pending,
        message: None,
        sync_id: Some(sync_id.clone()),
    };
    // The version an earlier sync carried stays with it: that sync still reports its outcome.
    state.store(id.clone(), txn);
    state.transfer_writes.entry(id).or_default().record(write);
    if write == TransferWrite::Create {
        state.create_calls += 1;
    }
    let start_worker = state.enqueue(sync_id.clone());
    drop(inner);
    queued(&shared, company, generation, start_worker, sync_id)
}

/// Whether two transfer bodies say the same thing (key order, spacing and `100` vs `100.00`
/// aside).
fn same_content(a: &RawValue, b: &RawValue) -> bool {
    exact::canonical(a).is_some_and(|a| Some(a) == exact::canonical(b))
}

/// The body as exact text and as a `Value` when it is a valid `TransferTransactionRequest`;
/// every problem otherwise, by field.
fn transfer_request(body: &[u8]) -> Result<(Box<RawValue>, Value), Vec<String>> {
    let not_json = |e: serde_json::Error| vec![format!("The body is not valid JSON: {e}")];
    let raw = exact::parse(body).map_err(not_json)?;
    let value = exact::value(&raw).map_err(not_json)?;
    let mut errors = Errors::default();
    transfer(&value, &mut errors);
    for message in exact::amount_errors_at(&raw, TRANSFER_AMOUNTS) {
        errors.push("", message);
    }
    if errors.is_empty() {
        Ok((raw, value))
    } else {
        Err(errors.messages)
    }
}

/// `TransferTransactionRequest`.
fn transfer(value: &Value, errors: &mut Errors) {
    let Some(object) = value.as_object() else {
        return errors.push("", "The body must be a TransferTransactionRequest object");
    };
    const KNOWN: &[&str] = &["description", "date", "from", "to"];
    validate::known_properties(object, KNOWN, "TransferTransactionRequest", "", errors);
    validate::string(object, "description", Presence::Optional, "", errors);
    validate::date_time(object, "date", Presence::Required, "", errors);
    for side in ["from", "to"] {
        let schema = format!("TransferTransactionRequest.{side}");
        validate::object(object, side, &schema, &["accountRef", "amount"], "", errors, |side, at, errors| {
            validate::reference(side, "accountRef", "AccountRef", &[], Presence::Required, at, errors);
            validate::number(side, "amount", Presence::Required, at, errors);
        });
    }
}

async fn create_adjustments(State(shared): AppState, Path(company): Path<String>, body: Bytes) -> Response {
    create_batch(&shared, &company, &body, TxnKind::Adjustment, adjustment)
}

/// `AdjustmentTransactionRequest`; returns its id when it is valid.
fn adjustment(item: &Value, raw: &RawValue, at: &str, errors: &mut Errors) -> Option<String> {
    let Some(object) = item.as_object() else {
        errors.push(at.trim_end_matches('.'), " must be an AdjustmentTransactionRequest object");
        return None;
    };
    const KNOWN: &[&str] = &["id", "date", "currency", "currencyRate", "reference", "lines"];
    validate::known_properties(object, KNOWN, "AdjustmentTransactionRequest", at, errors);
    let id = validate::uuid(object, "id", at, errors);
    validate::date_time(object, "date", Presence::Required, at, errors);
    validate::string(object, "currency", Presence::Required, at, errors);
    validate::number(object, "currencyRate", Presence::Nullable, at, errors);
    validate::string(object, "reference", Presence::Nullable, at, errors);
    validate::array(object, "lines", (1, 100), Presence::Required, at, errors, adjustment_line);
    // Exact amounts: what a float or a .NET decimal would round is refused, by field.
    for message in exact::amount_errors_at(raw, ADJUSTMENT_AMOUNTS) {
        errors.push(at, message);
    }
    id.filter(|_| errors.is_empty())
}

/// `AdjustmentTransactionLine`: a signed `amount` and an `accountRef`, both required.
fn adjustment_line(value: &Value, at: &str, errors: &mut Errors) {
    let Some(line) = value.as_object() else {
        return errors.push(at.trim_end_matches('.'), " must be an AdjustmentTransactionLine object");
    };
    const KNOWN: &[&str] = &["amount", "accountRef", "description", "trackingRefs", "invoiceTo"];
    validate::known_properties(line, KNOWN, "AdjustmentTransactionLine", at, errors);
    validate::number(line, "amount", Presence::Required, at, errors);
    validate::reference(line, "accountRef", "RecordRef", &[], Presence::Required, at, errors);
    validate::string(line, "description", Presence::Optional, at, errors);
    validate::array(line, "trackingRefs", (1, 10), Presence::Nullable, at, errors, |item, at, errors| {
        let data_type = [("dataType", ADJUSTMENT_TRACKING_TYPES)];
        validate::check_reference(item, "TrackingRefAdjustmentTransaction", &data_type, at, errors)
    });
    let contact_type: &[(&str, &[&str])] = &[("type", &["customer"])];
    validate::reference(line, "invoiceTo", "InvoiceTo", contact_type, Presence::Nullable, at, errors);
}

/// Why a transfer fails when its sync runs: the same account on both sides, or an amount that
/// is not greater than zero.
pub fn transfer_failure(txn: &Txn) -> Option<String> {
    let account = |side: &str| txn.body[side]["accountRef"]["id"].as_str().unwrap_or_default().to_string();
    let from = account("from");
    if from == account("to") {
        return Some(format!(
            "The transfer's from and to accounts are the same account ({from}): a transfer moves money between two accounts"
        ));
    }
    TRANSFER_AMOUNTS.iter().find_map(|path| {
        let amount = exact::values_at(&txn.raw, path).pop().and_then(|(_, raw)| exact::decimal(raw.get()));
        match amount {
            Some(amount) if amount > Decimal::ZERO => None,
            Some(amount) => Some(format!("The transfer's {path} {} must be greater than zero", shown(amount))),
            None => Some(format!("The transfer's {path} could not be read")),
        }
    })
}

/// Why an adjustment fails when its sync runs: its debits (positive lines) and credits
/// (negative lines) do not balance, added exactly as a .NET decimal adds.
pub fn adjustment_failure(txn: &Txn) -> Option<String> {
    let amounts = exact::values_at(&txn.raw, "lines[].amount");
    let total = amounts
        .iter()
        .try_fold(Decimal::ZERO, |total, (_, raw)| exact::decimal(raw.get()).and_then(|a| total.checked_add(a)));
    match total {
        Some(total) if total.is_zero() => None,
        Some(total) => Some(format!(
            "The adjustment's lines total {}: debits (positive lines) and credits (negative lines) must balance to zero",
            shown(total)
        )),
        None => Some(format!(
            "The adjustment's lines total is beyond the range of a decimal (±{}): they must balance to zero",
            Decimal::MAX
        )),
    }
}
