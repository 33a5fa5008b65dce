//! Every call passes here: authentication, injected faults, the call log.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::errors::error;
use crate::state::{AttachmentLog, Call, Fault, Shared};

/// The largest request body accepted (attachments included).
pub const MAX_BODY: usize = 20 * 1024 * 1024;

/// Authenticates, applies injected faults and logs every call with the status answered.
pub async fn track(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
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
    let expected = format!("Basic {}", shared.config.api_key);
    let authorized = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    let call = Call {
        seq: 0,
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(String::from),
        status: 0,
        body: json_body,
        raw_body: json_text(&parts.headers, &bytes),
        attachment: None,
        handled_status: None,
    };
    let mut handled_status = None;
    // An answer delayed after Codat acted is logged before the delay: a client that gives up
    // waiting must not hide a call Codat carried out.
    let mut delay_after_logging = None;
    let response = if !authorized {
        error(StatusCode::UNAUTHORIZED, "Unauthorized", vec![])
    } else {
        let request = Request::from_parts(parts.clone(), Body::from(bytes));
        match take_fault(&shared, &parts.method, &path) {
            None => {
                let handled = next.run(request).await;
                handled_status = Some(handled.status().as_u16());
                handled
            }
            Some(fault) if fault.after_effect => {
                let handled = next.run(request).await;
                handled_status = Some(handled.status().as_u16());
                delay_after_logging = Some(fault.clone());
                match fault_response(&fault) {
                    Some(mut replaced) => {
                        // What Codat stored is still logged; only the answer is lost.
                        if let Some(log) = handled.extensions().get::<AttachmentLog>().cloned() {
                            replaced.extensions_mut().insert(log);
                        }
                        replaced
                    }
                    None => handled,
                }
            }
            Some(fault) => {
                sleep(&fault).await;
                match fault_response(&fault) {
                    Some(response) => response,
                    None => {
                        let handled = next.run(request).await;
                        handled_status = Some(handled.status().as_u16());
                        handled
                    }
                }
            }
        }
    };
    {
        let mut inner = shared.lock();
        let mut logged = call;
        logged.status = response.status().as_u16();
        logged.handled_status = handled_status;
        logged.attachment = response.extensions().get::<AttachmentLog>().cloned();
        logged.seq = inner.calls.len() as u64 + 1;
        inner.calls.push(logged);
    }
    if let Some(fault) = delay_after_logging {
        sleep(&fault).await;
    }
    response
}

/// The body's exact text when it is JSON, by its Content-Type or its syntax: what `body`, read
/// through floats, may have rounded. Bodies that are not UTF-8 are not JSON text.
fn json_text(headers: &HeaderMap, bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok().filter(|text| !text.is_empty())?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().to_ascii_lowercase().ends_with("json")));
    // `IgnoredAny` checks the syntax without reading numbers, so `1e400` counts as JSON.
    let json_syntax = || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    (json_type || json_syntax()).then(|| text.to_string())
}

/// The first matching fault with uses left, one use taken.
fn take_fault(shared: &Shared, method: &Method, path: &str) -> Option<Fault> {
    let mut inner = shared.lock();
    let fault = inner.faults.iter_mut().find(|f| {
        f.times > 0
            && path.contains(&f.path_contains)
            && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
    })?;
    fault.times -= 1;
    Some(fault.clone())
}

async fn sleep(fault: &Fault) {
    if let Some(ms) = fault.delay_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The fault's own answer, or `None` when it only delays.
fn fault_response(fault: &Fault) -> Option<Response> {
    let status = StatusCode::from_u16(fault.status?).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(status, "Injected fault", vec![]);
    if let Some(seconds) = fault.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    Some(response)
}
