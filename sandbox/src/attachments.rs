//! Attachment upload, for expense transactions of either API once their sync completed them
//! (never for transfers or adjustments), within what the company's accounting software takes
//! (current API: `connections::upload_refusal`).

use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::connections::{upload_refusal, Upload};
use crate::errors::{company_not_found, error, invalid, item_error, normalize_id, parse_uuid};
use crate::state::{AttachmentLog, Shared, TxnKind, TxnStatus};

type AppState = State<Arc<Shared>>;

pub fn routes(state: Arc<Shared>) -> Router {
    let path = "/companies/{companyId}/sync/expenses/syncs/{syncId}/transactions/{transactionId}/attachments";
    Router::new().route(path, post(upload_attachment)).with_state(state)
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
        return company_not_found();
    };
    let (sync_id, transaction_id) = (normalize_id(&sync_id), normalize_id(&transaction_id));
    let Some(txn) = state.txn_in(&sync_id, &transaction_id) else {
        return error(StatusCode::NOT_FOUND, "Transaction not found in that sync", vec![]);
    };
    // The YAML: attachments for Transfer and Adjustment transactions are not supported for any
    // integration. It gives no status of its own for that, so: a 400 naming the transaction.
    if !txn.kind.takes_attachments() {
        let kind = if txn.kind == TxnKind::Transfer { "a transfer" } else { "an adjustment" };
        let message = format!(
            "Transaction {transaction_id} is {kind}: attachments are not supported for Transfer and Adjustment transactions"
        );
        return invalid(vec![item_error(Some(&transaction_id), message)]);
    }
    // The company's accounting software decides which files it takes (`connections.rs`).
    let upload = Upload { file_name: file_name.as_deref(), content_type: content_type.as_deref(), size: bytes.len() };
    let sync_kind = state.syncs.get(&sync_id).map(|s| s.kind);
    if let Some(refusal) = upload_refusal(&company, state, sync_kind, &transaction_id, txn, &upload) {
        return refusal;
    }
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
