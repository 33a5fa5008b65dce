//! The v1 endpoints.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::state::{AttachmentLog, Call, Dataset, Shared, SyncRun, Txn, TxnStatus};

type AppState = State<Arc<Shared>>;

const TRANSACTION_TYPES: &[&str] =
    &["Payment", "Refund", "Reward", "Chargeback", "TransferIn", "TransferOut", "AdjustmentIn", "AdjustmentOut"];
const MAX_BODY: usize = 20 * 1024 * 1024;

pub fn routes(state: Arc<Shared>) -> Router {
    let base = "/companies/{companyId}/sync/expenses";
    Router::new()
        .route(&format!("{base}/data/expense-transactions"), post(create_dataset))
        .route(&format!("{base}/syncs"), post(initiate_sync))
        .route(&format!("{base}/syncs/{{syncId}}/status"), get(sync_status))
        .route(&format!("{base}/syncs/{{syncId}}/transactions"), get(sync_transactions))
        .route(&format!("{base}/syncs/{{syncId}}/transactions/{{transactionId}}/attachments"), post(upload_attachment))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `ErrorMessage` as Codat sends it.
pub fn error(status: StatusCode, message: &str, validation: Vec<Value>) -> Response {
    let service = if status == StatusCode::UNAUTHORIZED { "PublicApi" } else { "ExpenseSyncApi" };
    let body = json!({
        "statusCode": status.as_u16(),
        "service": service,
        "error": message,
        "correlationId": Uuid::new_v4().simple().to_string(),
        "validation": if validation.is_empty() { Value::Null } else { json!({"errors": validation, "warnings": []}) },
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
    });
    (status, Json(body)).into_response()
}

fn invalid(errors: Vec<Value>) -> Response {
    error(StatusCode::BAD_REQUEST, "The request made is not valid.", errors)
}

fn item_error(item_id: Option<&str>, message: String) -> Value {
    json!({"itemId": item_id, "message": message, "validatorName": "Sandbox"})
}

/// Authenticates, applies injected faults and logs every call.
pub async fn track(State(shared): AppState, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let admin = path.starts_with("/_sandbox") || path == "/health";
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "Request too large", vec![]),
    };
    if admin {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    }
    let json_body = serde_json::from_slice::<Value>(&bytes).ok();
    let call = |status: u16, attachment: Option<AttachmentLog>| Call {
        seq: 0,
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(String::from),
        status,
        body: json_body.clone(),
        attachment,
    };
    let expected = format!("Basic {}", shared.config.api_key);
    let authorized = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    let refusal = if !authorized {
        Some(error(StatusCode::UNAUTHORIZED, "Unauthorized", vec![]))
    } else {
        injected_fault(&shared, &parts.method, &path)
    };
    let response = match refusal {
        Some(response) => response,
        None => next.run(Request::from_parts(parts.clone(), Body::from(bytes))).await,
    };
    let attachment = response.extensions().get::<AttachmentLog>().cloned();
    let mut inner = shared.lock();
    let mut logged = call(response.status().as_u16(), attachment);
    logged.seq = inner.calls.len() as u64 + 1;
    inner.calls.push(logged);
    response
}

fn injected_fault(shared: &Shared, method: &Method, path: &str) -> Option<Response> {
    let mut inner = shared.lock();
    let index = inner.faults.iter().position(|f| {
        f.times > 0
            && path.contains(&f.path_contains)
            && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
    })?;
    let fault = &mut inner.faults[index];
    fault.times -= 1;
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = fault.retry_after;
    drop(inner);
    let mut response = error(status, "Injected fault", vec![]);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    Some(response)
}

fn parse_uuid(value: &str) -> Option<String> {
    Uuid::parse_str(value).ok().map(|u| u.hyphenated().to_string())
}

async fn create_dataset(State(shared): AppState, Path(company): Path<String>, body: Option<Json<Value>>) -> Response {
    let Some(company) = parse_uuid(&company) else {
        return error(StatusCode::NOT_FOUND, "No company was found with that ID", vec![]);
    };
    let Some(Json(body)) = body else {
        return invalid(vec![item_error(None, "Body must be a JSON object".into())]);
    };
    let items = match body.get("items").and_then(Value::as_array) {
        Some(items) if (1..=50).contains(&items.len()) => items.clone(),
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
    for (index, item) in items.iter().enumerate() {
        match validate_transaction(item) {
            Ok(id) => ids.push(id),
            Err(messages) => {
                let id = item.get("id").and_then(Value::as_str);
                errors.extend(messages.into_iter().map(|m| item_error(id, format!("items[{index}]: {m}"))));
            }
        }
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
    let dataset_id = Uuid::new_v4().to_string();
    for (id, item) in ids.iter().zip(items) {
        state
            .transactions
            .insert(id.clone(), Txn { body: item, status: TxnStatus::Pending, message: None, sync_id: None });
    }
    state.datasets.insert(dataset_id.clone(), Dataset { items: ids, sync_id: None });
    (StatusCode::OK, Json(json!({"datasetId": dataset_id}))).into_response()
}

/// Checks one `ExpenseTransaction` against the schema; returns its id.
fn validate_transaction(item: &Value) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let Some(object) = item.as_object() else { return Err(vec!["must be an object".into()]) };
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
        Some(d) if chrono::DateTime::parse_from_rfc3339(d).is_ok() => {}
        _ => errors.push("issueDate is required and must be a date-time".into()),
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
    let Some(company) = parse_uuid(&company) else {
        return error(StatusCode::NOT_FOUND, "No company was found with that ID", vec![]);
    };
    let Some(Json(body)) = body else { return invalid(vec![item_error(None, "Body must be PostSync".into())]) };
    if body.as_object().is_none_or(|o| o.keys().any(|k| k != "datasetIds")) {
        return invalid(vec![item_error(None, "PostSync allows only datasetIds".into())]);
    }
    let requested: Vec<String> = match body.get("datasetIds").and_then(Value::as_array) {
        Some(ids) if !ids.is_empty() => ids.iter().filter_map(Value::as_str).filter_map(parse_uuid).collect(),
        _ => return invalid(vec![item_error(None, "datasetIds must hold at least one dataset id".into())]),
    };
    let mut inner = shared.lock();
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
    let sync_id = Uuid::new_v4().to_string();
    for id in &requested {
        let dataset = state.datasets.get_mut(id).expect("checked");
        dataset.sync_id = Some(sync_id.clone());
        for txn in dataset.items.clone() {
            if let Some(t) = state.transactions.get_mut(&txn) {
                t.sync_id = Some(sync_id.clone());
            }
        }
    }
    state.syncs.insert(
        sync_id.clone(),
        SyncRun { dataset_ids: requested, done: false, started: chrono::Utc::now(), finished: None },
    );
    state.running_syncs += 1;
    state.max_running_syncs = state.max_running_syncs.max(state.running_syncs);
    drop(inner);
    tokio::spawn(crate::webhooks::run_sync(shared.clone(), company, sync_id.clone()));
    (StatusCode::ACCEPTED, Json(json!({"syncId": sync_id}))).into_response()
}

async fn sync_status(State(shared): AppState, Path((company, sync_id)): Path<(String, String)>) -> Response {
    let inner = shared.lock();
    let Some((company_state, sync)) =
        parse_uuid(&company).and_then(|c| inner.companies.get(&c)).and_then(|c| c.syncs.get(&sync_id).map(|s| (c, s)))
    else {
        return error(StatusCode::NOT_FOUND, "Sync not found", vec![]);
    };
    let txns = company_state.sync_transactions(&sync_id);
    let failed = txns
        .iter()
        .filter(|t| company_state.transactions.get(*t).is_some_and(|t| t.status == TxnStatus::ValidationError))
        .count();
    let (code, text, message) = match (sync.done, failed) {
        (false, _) => (1100, "Pushing", String::new()),
        (true, 0) => (2000, "Complete", String::new()),
        (true, n) if n == txns.len() => (4000, "Failed", format!("{n} of {} transactions failed", txns.len())),
        (true, n) => (2000, "Complete", format!("{n} of {} transactions failed", txns.len())),
    };
    Json(json!({
        "companyId": company,
        "syncId": sync_id,
        "syncStatusCode": code,
        "syncStatus": text,
        "errorMessage": message,
        "syncExceptionMessage": "",
        "syncUtc": sync.finished.unwrap_or(sync.started).to_rfc3339(),
        "dataPushed": sync.done && failed < txns.len(),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
}

async fn sync_transactions(
    State(shared): AppState,
    Path((company, sync_id)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let malformed = |m: &str| error(StatusCode::BAD_REQUEST, &format!("Error parsing query - {m}"), vec![]);
    let page: u32 = match query.page.as_deref().map(str::parse) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => return malformed("page must be an integer of at least 1"),
    };
    let page_size: u32 = match query.page_size.as_deref().map(str::parse) {
        None => 100,
        Some(Ok(s)) if (1..=5000).contains(&s) => s,
        _ => return malformed("pageSize must be an integer from 1 to 5000"),
    };
    let inner = shared.lock();
    let Some(state) =
        parse_uuid(&company).and_then(|c| inner.companies.get(&c)).filter(|c| c.syncs.contains_key(&sync_id))
    else {
        return error(StatusCode::NOT_FOUND, "Sync not found", vec![]);
    };
    let mut ids: Vec<String> =
        state.sync_transactions(&sync_id).into_iter().filter(|id| !inner.unreported.contains(id)).collect();
    ids.sort();
    let total = ids.len() as u32;
    let start = ((page - 1) * page_size) as usize;
    let results: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(page_size as usize)
        .filter_map(|id| state.transactions.get(id).map(|t| (id, t)))
        .map(|(id, t)| json!({"transactionId": id, "status": t.status.as_str(), "message": t.message, "integrationType": "expenses"}))
        .collect();
    let href = |p: u32| {
        format!("/companies/{company}/sync/expenses/syncs/{sync_id}/transactions?page={p}&pageSize={page_size}")
    };
    let mut links = json!({"self": {"href": format!("/companies/{company}/sync/expenses/syncs/{sync_id}/transactions")},
                           "current": {"href": href(page)}});
    if (page as u64) * (page_size as u64) < total as u64 {
        links["next"] = json!({"href": href(page + 1)});
    }
    if page > 1 {
        links["previous"] = json!({"href": href(page - 1)});
    }
    Json(json!({"results": results, "pageNumber": page, "pageSize": page_size, "totalResults": total, "_links": links}))
        .into_response()
}

async fn upload_attachment(
    State(shared): AppState,
    Path((company, sync_id, transaction_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let Ok(mut multipart) = multipart.map_err(|_| ()).and_then(|m| if is_multipart { Ok(m) } else { Err(()) }) else {
        return invalid(vec![item_error(None, "Body must be multipart/form-data".into())]);
    };
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let file_name = field.file_name().map(String::from);
                let content_type = field.content_type().map(String::from);
                match field.bytes().await {
                    Ok(bytes) => file = Some((file_name, content_type, bytes)),
                    Err(_) => return invalid(vec![item_error(None, "Unreadable file part".into())]),
                }
            }
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                return invalid(vec![item_error(None, format!("Unexpected part {name}; only file is accepted"))]);
            }
            Ok(None) => break,
            Err(_) => return invalid(vec![item_error(None, "Malformed multipart body".into())]),
        }
    }
    let Some((file_name, content_type, bytes)) = file.filter(|f| !f.2.is_empty()) else {
        return invalid(vec![item_error(None, "file is required".into())]);
    };
    let mut inner = shared.lock();
    let Some(state) = parse_uuid(&company).and_then(|c| inner.companies.get_mut(&c)) else {
        return error(StatusCode::NOT_FOUND, "No company was found with that ID", vec![]);
    };
    let Some(txn) = state.transactions.get(&transaction_id).filter(|t| t.sync_id.as_deref() == Some(sync_id.as_str()))
    else {
        return error(StatusCode::NOT_FOUND, "Transaction not found in that sync", vec![]);
    };
    if txn.status != TxnStatus::Completed {
        return invalid(vec![item_error(
            Some(&transaction_id),
            format!("Transaction is {}, not Completed", txn.status.as_str()),
        )]);
    }
    state.attachments += 1;
    let attachment_id = format!("{}", 1_400_000_000_000_000_000u64 + state.attachments);
    let log = AttachmentLog {
        file_name,
        content_type,
        size: bytes.len(),
        sha256: Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        bytes_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
    };
    let mut response =
        Json(json!({"companyId": company, "id": attachment_id, "transactionId": transaction_id})).into_response();
    response.extensions_mut().insert(log);
    response
}
