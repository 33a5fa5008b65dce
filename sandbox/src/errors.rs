//! `ErrorMessage` bodies and small request helpers shared by both APIs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

/// `ErrorMessage` as Codat sends it.
pub fn error(status: StatusCode, message: &str, validation: Vec<Value>) -> Response {
    let service = if status == StatusCode::UNAUTHORIZED { "PublicApi" } else { "ExpenseSyncApi" };
    error_from(service, status, message, validation)
}

/// `ErrorMessage` from a named Codat service (the YAML's examples name `PublicApi`,
/// `ClientsApi`, ... for the platform's own routes).
pub fn error_from(service: &str, status: StatusCode, message: &str, validation: Vec<Value>) -> Response {
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

/// 400 with validation errors.
pub fn invalid(errors: Vec<Value>) -> Response {
    error(StatusCode::BAD_REQUEST, "The request made is not valid.", errors)
}

/// One `errorValidationItem`.
pub fn item_error(item_id: Option<&str>, message: String) -> Value {
    json!({"itemId": item_id, "message": message, "validatorName": "Sandbox"})
}

pub fn company_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "No company was found with that ID", vec![])
}

/// A uuid in its canonical (lower-case, hyphenated) form.
pub fn parse_uuid(value: &str) -> Option<String> {
    Uuid::parse_str(value).ok().map(|u| u.hyphenated().to_string())
}

/// A path id as stored: canonical when it is a uuid, as given otherwise.
pub fn normalize_id(value: &str) -> String {
    parse_uuid(value).unwrap_or_else(|| value.to_string())
}
