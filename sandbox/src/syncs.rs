//! Sync status and sync transactions: the same paths serve v1 syncs (initiated from datasets)
//! and current-API syncs (created with their transactions).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::errors::{error, normalize_id, parse_uuid};
use crate::state::{Company, Inner, Shared, SyncKind, SyncPhase, SyncRun, TxnStatus};

type AppState = State<Arc<Shared>>;

pub fn routes(state: Arc<Shared>) -> Router {
    let base = "/companies/{companyId}/sync/expenses/syncs";
    Router::new()
        .route(&format!("{base}/latest/status"), get(latest_status))
        .route(&format!("{base}/lastSuccessful/status"), get(last_successful_status))
        .route(&format!("{base}/list/status"), get(list_status))
        .route(&format!("{base}/{{syncId}}/status"), get(sync_status))
        .route(&format!("{base}/{{syncId}}/transactions"), get(sync_transactions))
        .route(&format!("{base}/{{syncId}}/transactions/{{transactionId}}"), get(sync_transaction))
        .with_state(state)
}

fn sync_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Sync not found", vec![])
}

/// `CompanySyncStatus` of one sync.
fn status_json(company: &str, sync_id: &str, state: &Company, sync: &SyncRun) -> Value {
    let txns = state.sync_transactions(sync_id);
    let failed = txns
        .iter()
        .filter(|t| state.txn_in(sync_id, t).is_some_and(|t| t.status == TxnStatus::ValidationError))
        .count();
    let (code, text, message) = match (sync.phase, sync.kind, failed) {
        (SyncPhase::Queued, _, _) => (1000, "Started", String::new()),
        (SyncPhase::Running, SyncKind::Current, _) => (1010, "Pushing", String::new()),
        (SyncPhase::Running, SyncKind::V1, _) => (1100, "Pushing", String::new()),
        (SyncPhase::Done, _, 0) => (2000, "Complete", String::new()),
        (SyncPhase::Done, _, n) if n == txns.len() => {
            (4000, "Failed", format!("{n} of {} transactions failed", txns.len()))
        }
        (SyncPhase::Done, _, n) => (2000, "Complete", format!("{n} of {} transactions failed", txns.len())),
    };
    let done = sync.phase == SyncPhase::Done;
    json!({
        "companyId": company,
        "syncId": sync_id,
        "syncStatusCode": code,
        "syncStatus": text,
        "errorMessage": message,
        "syncExceptionMessage": "",
        "syncUtc": sync.finished.unwrap_or(sync.started).to_rfc3339(),
        "dataPushed": done && failed < txns.len(),
    })
}

fn company<'a>(inner: &'a Inner, company: &str) -> Option<(String, &'a Company)> {
    let id = parse_uuid(company)?;
    inner.companies.get(&id).map(|c| (id, c))
}

async fn sync_status(State(shared): AppState, Path((company_id, sync_id)): Path<(String, String)>) -> Response {
    let inner = shared.lock();
    let sync_id = normalize_id(&sync_id);
    let Some((company_id, state)) = company(&inner, &company_id) else { return sync_not_found() };
    let Some(sync) = state.syncs.get(&sync_id) else { return sync_not_found() };
    Json(status_json(&company_id, &sync_id, state, sync)).into_response()
}

/// Every sync's status, newest first.
fn statuses(inner: &Inner, company_id: &str) -> Option<Vec<Value>> {
    let (company_id, state) = company(inner, company_id)?;
    Some(state.syncs_newest_first().into_iter().map(|(id, sync)| status_json(&company_id, id, state, sync)).collect())
}

async fn list_status(State(shared): AppState, Path(company_id): Path<String>) -> Response {
    if parse_uuid(&company_id).is_none() {
        return crate::errors::company_not_found();
    }
    Json(statuses(&shared.lock(), &company_id).unwrap_or_default()).into_response()
}

async fn latest_status(State(shared): AppState, Path(company_id): Path<String>) -> Response {
    match statuses(&shared.lock(), &company_id).and_then(|s| s.into_iter().next()) {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, "No sync was found for this company", vec![]),
    }
}

/// The newest sync that finished with 2000 Complete.
async fn last_successful_status(State(shared): AppState, Path(company_id): Path<String>) -> Response {
    let statuses = statuses(&shared.lock(), &company_id).unwrap_or_default();
    match statuses.into_iter().find(|s| s["syncStatusCode"] == 2000) {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, "No successful sync was found for this company", vec![]),
    }
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
}

/// `Transaction`, as the sync carried it. Transfers and adjustments are `expenses` too: the
/// YAML's `IntegrationType` has no other value for them.
fn transaction_json(sync_id: &str, id: &str, state: &Company) -> Option<Value> {
    let t = state.txn_in(sync_id, id)?;
    Some(json!({"transactionId": id, "status": t.status.as_str(), "message": t.message, "integrationType": "expenses"}))
}

async fn sync_transactions(
    State(shared): AppState,
    Path((company_id, sync_id)): Path<(String, String)>,
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
    let sync_id = normalize_id(&sync_id);
    let Some((_, state)) = company(&inner, &company_id).filter(|(_, c)| c.syncs.contains_key(&sync_id)) else {
        return sync_not_found();
    };
    let mut ids: Vec<String> =
        state.sync_transactions(&sync_id).into_iter().filter(|id| !inner.unreported.contains(id)).collect();
    ids.sort();
    let total = ids.len() as u64;
    let start = (u64::from(page) - 1).saturating_mul(u64::from(page_size));
    let results: Vec<Value> = ids
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(page_size as usize)
        .filter_map(|id| transaction_json(&sync_id, id, state))
        .collect();
    let href = |p: u64| {
        format!("/companies/{company_id}/sync/expenses/syncs/{sync_id}/transactions?page={p}&pageSize={page_size}")
    };
    let mut links = json!({"self": {"href": format!("/companies/{company_id}/sync/expenses/syncs/{sync_id}/transactions")},
                           "current": {"href": href(page.into())}});
    if u64::from(page) * u64::from(page_size) < total {
        links["next"] = json!({"href": href(u64::from(page) + 1)});
    }
    if page > 1 {
        links["previous"] = json!({"href": href(u64::from(page) - 1)});
    }
    Json(json!({"results": results, "pageNumber": page, "pageSize": page_size, "totalResults": total, "_links": links}))
        .into_response()
}

/// `TransactionResponse`: an array holding the one transaction.
async fn sync_transaction(
    State(shared): AppState,
    Path((company_id, sync_id, transaction_id)): Path<(String, String, String)>,
) -> Response {
    let inner = shared.lock();
    let (sync_id, transaction_id) = (normalize_id(&sync_id), normalize_id(&transaction_id));
    let Some((_, state)) = company(&inner, &company_id) else { return sync_not_found() };
    match transaction_json(&sync_id, &transaction_id, state).filter(|_| !inner.unreported.contains(&transaction_id)) {
        Some(transaction) => Json(json!([transaction])).into_response(),
        None => error(StatusCode::NOT_FOUND, "Transaction not found in that sync", vec![]),
    }
}
