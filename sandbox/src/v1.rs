//! The Sync for Expenses v1 endpoints that only v1 has (`Codat-Sync-Expenses-v1.yaml`): create
//! a dataset of expense transactions, then initiate a sync of datasets. Sync status,
//! transactions and attachments are shared with the current API (`syncs.rs`, `attachments.rs`).

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
use crate::state::{Dataset, Shared, SyncKind, Txn, TxnKind, TxnStatus};
use crate::validate::is_offset_date_time;

type AppState = State<Arc<Shared>>;

const TRANSACTION_TYPES: &[&str] =
    &["Payment", "Refund", "Reward", "Chargeback", "TransferIn", "TransferOut", "AdjustmentIn", "AdjustmentOut"];

pub fn routes(state: Arc<Shared>) -> Router {
    let base = "/companies/{companyId}/sync/expenses";
    Router::new()
        .route(&format!("{base}/data/expense-transactions"), post(create_dataset))
        .route(&format!("{base}/syncs"), post(initiate_sync))
        .with_state(state)
}

async fn create_dataset(State(shared): AppState, Path(company): Path<String>, body: Bytes) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    // Read as exact text, so an amount a float cannot hold gets its own answer, by field.
    let body = match exact::parse(&body) {
        Ok(body) => body,
        Err(e) => return invalid(vec![item_error(None, format!("Body must be a JSON object: {e}"))]),
    };
    let raw_items = match exact::property(&body, "items").and_then(|items| exact::elements(&items)) {
        Some(items) if (1..=50).contains(&items.len()) => items,
        Some(items) => {
            return invalid(vec![item_error(
                None,
                format!("items must hold 1 to 50 transactions, got {}", items.len()),
            )])
        }
        None => return invalid(vec![item_error(None, "items is required".into())]),
    };
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut items = Vec::new();
    for (index, raw) in raw_items.iter().enumerate() {
        let item = match exact::value(raw) {
            Ok(item) => item,
            Err(e) => {
                errors.push(item_error(None, format!("items[{index}]: is not valid JSON: {e}")));
                continue;
            }
        };
        match validate_transaction(&item, raw) {
            Ok(id) => ids.push(id),
            Err(messages) => {
                let id = item.get("id").and_then(Value::as_str);
                errors.extend(messages.into_iter().map(|m| item_error(id, format!("items[{index}]: {m}"))));
            }
        }
        items.push(item);
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let mut inner = shared.lock();
    let state = inner.companies.entry(company).or_default();
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        if state.transactions.contains_key(id) || !seen.insert(id.clone()) {
            errors.push(item_error(Some(id), format!("Transaction id {id} has already been used for this company")));
        }
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let dataset_id = uuid::Uuid::new_v4().to_string();
    for ((id, body), raw) in ids.iter().zip(items).zip(raw_items) {
        let txn = Txn { body, raw, kind: TxnKind::Expense, status: TxnStatus::Pending, message: None, sync_id: None };
        state.transactions.insert(id.clone(), txn);
    }
    state.create_calls += 1;
    state.datasets.insert(dataset_id.clone(), Dataset { items: ids, sync_id: None });
    (StatusCode::OK, Json(json!({"datasetId": dataset_id}))).into_response()
}

/// Checks one `ExpenseTransaction` (`raw` is its exact text) against the schema; returns its id.
fn validate_transaction(item: &Value, raw: &RawValue) -> Result<String, Vec<String>> {
    let Some(object) = item.as_object() else { return Err(vec!["must be an object".into()]) };
    let mut errors = Vec::new();
    const KNOWN: &[&str] =
        &["id", "type", "issueDate", "currency", "currencyRate", "contactRef", "merchantName", "lines", "notes"];
    for key in object.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        errors.push(format!("{key} is not a property of ExpenseTransaction"));
    }
    let id = object.get("id").and_then(Value::as_str).and_then(parse_uuid);
    if id.is_none() {
        errors.push("id is required and must be a uuid".into());
    }
    match object.get("type").and_then(Value::as_str) {
        Some(t) if TRANSACTION_TYPES.contains(&t) => {}
        _ => errors.push(format!("type is required and must be one of {}", TRANSACTION_TYPES.join(", "))),
    }
    match object.get("issueDate").and_then(Value::as_str) {
        Some(d) if is_offset_date_time(d) => {}
        _ => errors.push(
            "issueDate is required and must be a date-time (2022-10-23T00:00:00Z) with a year from 0001 to 9999".into(),
        ),
    }
    if !object.get("currency").is_some_and(Value::is_string) {
        errors.push("currency is required".into());
    }
    if let Some(rate) = object.get("currencyRate") {
        if !(rate.is_null() || rate.is_number()) {
            errors.push("currencyRate must be a number".into());
        }
    }
    if let Some(contact) = object.get("contactRef") {
        let ok = contact.get("id").is_some_and(Value::is_string)
            && contact.get("contactType").is_none_or(|t| t == "Supplier")
            && contact.as_object().is_some_and(|c| c.keys().all(|k| k == "id" || k == "contactType"));
        if !ok {
            errors.push("contactRef must be {id, contactType: Supplier}".into());
        }
    }
    for text in ["merchantName", "notes"] {
        if object.get(text).is_some_and(|v| !v.is_string()) {
            errors.push(format!("{text} must be a string"));
        }
    }
    match object.get("lines").and_then(Value::as_array) {
        Some(lines) if (1..=100).contains(&lines.len()) => {
            for (i, line) in lines.iter().enumerate() {
                errors.extend(validate_line(line).into_iter().map(|m| format!("lines[{i}].{m}")));
            }
        }
        _ => errors.push("lines must hold 1 to 100 lines".into()),
    }
    // Exact amounts: what a float or a .NET decimal would round is refused, by field.
    errors.extend(exact::amount_errors(raw));
    if errors.is_empty() {
        Ok(id.expect("checked"))
    } else {
        Err(errors)
    }
}

fn validate_line(line: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(line) = line.as_object() else { return vec!["must be an object".into()] };
    const KNOWN: &[&str] = &["netAmount", "taxAmount", "taxRateRef", "accountRef", "trackingRefs"];
    for key in line.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        errors.push(format!("{key} is not a property of ExpenseTransactionLine"));
    }
    for amount in ["netAmount", "taxAmount"] {
        if !line.get(amount).is_some_and(Value::is_number) {
            errors.push(format!("{amount} is required and must be a number"));
        }
    }
    let is_ref = |v: &Value| v.get("id").is_some_and(Value::is_string) && v.as_object().is_some_and(|o| o.len() == 1);
    if !line.get("accountRef").is_some_and(is_ref) {
        errors.push("accountRef is required and must be {id}".into());
    }
    if line.get("taxRateRef").is_some_and(|v| !is_ref(v)) {
        errors.push("taxRateRef must be {id}".into());
    }
    if let Some(refs) = line.get("trackingRefs") {
        let ok = refs.as_array().is_some_and(|r| (1..=10).contains(&r.len()) && r.iter().all(is_ref));
        if !ok {
            errors.push("trackingRefs must hold 1 to 10 {id} references".into());
        }
    }
    errors
}

async fn initiate_sync(State(shared): AppState, Path(company): Path<String>, body: Option<Json<Value>>) -> Response {
    let Some(company) = parse_uuid(&company) else { return company_not_found() };
    let Some(Json(body)) = body else { return invalid(vec![item_error(None, "Body must be PostSync".into())]) };
    if body.as_object().is_none_or(|o| o.keys().any(|k| k != "datasetIds")) {
        return invalid(vec![item_error(None, "PostSync allows only datasetIds".into())]);
    }
    let requested: Vec<String> = match body.get("datasetIds").and_then(Value::as_array) {
        Some(ids) if !ids.is_empty() => ids.iter().filter_map(Value::as_str).filter_map(parse_uuid).collect(),
        _ => return invalid(vec![item_error(None, "datasetIds must hold at least one dataset id".into())]),
    };
    let mut inner = shared.lock();
    let generation = inner.generation;
    let state = inner.companies.entry(company.clone()).or_default();
    let mut errors = Vec::new();
    for id in &requested {
        match state.datasets.get(id) {
            None => errors.push(item_error(Some(id), format!("Dataset {id} not found"))),
            Some(d) if d.sync_id.is_some() => {
                errors.push(item_error(Some(id), format!("Dataset {id} has already been synced")))
            }
            Some(_) => {}
        }
    }
    if !errors.is_empty() || requested.len() != body["datasetIds"].as_array().map_or(0, Vec::len) {
        if errors.is_empty() {
            errors.push(item_error(None, "datasetIds must be uuids".into()));
        }
        return invalid(errors);
    }
    let sync_id = state.add_sync(SyncKind::V1, requested.clone(), Vec::new());
    for id in &requested {
        let dataset = state.datasets.get_mut(id).expect("checked");
        dataset.sync_id = Some(sync_id.clone());
        for txn in dataset.items.clone() {
            if let Some(t) = state.transactions.get_mut(&txn) {
                t.sync_id = Some(sync_id.clone());
            }
        }
    }
    state.start_running();
    drop(inner);
    tokio::spawn(crate::runner::run_v1_sync(shared.clone(), company, sync_id.clone(), generation));
    (StatusCode::ACCEPTED, Json(json!({"syncId": sync_id}))).into_response()
}
