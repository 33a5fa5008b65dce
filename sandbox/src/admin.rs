//! `/_sandbox/*`: what tests read and steer. A company's connections are set by
//! `PUT /_sandbox/companies/{companyId}/connections`, routed in `connections.rs`; a reset
//! clears them with the rest of the state.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::{Fault, Inner, Shared};

pub fn routes(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/faults", post(add_fault))
        .route("/_sandbox/drop-webhooks", post(drop_webhooks))
        .route("/_sandbox/unreported", post(unreported))
        .route("/_sandbox/reset", post(reset))
        .with_state(state)
}

async fn calls(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.lock().calls.clone())
}

async fn stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let inner = shared.lock();
    let companies: serde_json::Map<String, Value> = inner
        .companies
        .iter()
        .map(|(id, c)| {
            (id.clone(), json!({
                "transactions": c.transactions.len(), "datasets": c.datasets.len(), "syncs": c.syncs.len(),
                "runningSyncs": c.running_syncs, "maxConcurrentSyncs": c.max_running_syncs, "attachments": c.attachments,
                "createCalls": c.create_calls, "transfers": c.transfer_writes,
            }))
        })
        .collect();
    Json(json!({"companies": companies, "webhooksSent": inner.webhooks_sent, "calls": inner.calls.len()}))
}

/// Body: `{method?, pathContains, status?, retryAfter?, times? (1), afterEffect? (false), delayMs?}`.
async fn add_fault(State(shared): State<Arc<Shared>>, Json(fault): Json<Fault>) -> impl IntoResponse {
    shared.lock().faults.push(fault);
    Json(json!({"ok": true}))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DropWebhooks {
    company_id: String,
    count: u32,
}

/// The next `count` webhooks for the company are not sent (a lost delivery).
async fn drop_webhooks(State(shared): State<Arc<Shared>>, Json(body): Json<DropWebhooks>) -> impl IntoResponse {
    shared.lock().webhooks_to_drop.insert(body.company_id.to_ascii_lowercase(), body.count);
    Json(json!({"ok": true}))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unreported {
    transaction_ids: Vec<String>,
}

/// These transactions are left out of every sync's transaction listing.
async fn unreported(State(shared): State<Arc<Shared>>, Json(body): Json<Unreported>) -> impl IntoResponse {
    shared.lock().unreported.extend(body.transaction_ids.into_iter().map(|id| id.to_ascii_lowercase()));
    Json(json!({"ok": true}))
}

async fn reset(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut inner = shared.lock();
    let generation = inner.generation + 1;
    *inner = Inner { generation, ..Inner::default() };
    Json(json!({"ok": true}))
}
