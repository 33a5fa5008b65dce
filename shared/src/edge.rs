//! The HTTP edge shared by the API Gateway functions: JSON answers and path parameters.
//! Plain `http` types, so handlers stay testable without Lambda.

use http::{header, Response, StatusCode};
use serde::Serialize;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<String> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_string(body).expect("response serializes"))
        .expect("static response parts are valid")
}

/// A 4xx/5xx answer: `{"error": kind, "field": ..., "message": ...}`.
pub fn problem(status: StatusCode, kind: &str, field: Option<&str>, message: &str) -> Response<String> {
    let mut body = serde_json::json!({"error": kind, "message": message});
    if let Some(field) = field {
        body["field"] = field.into();
    }
    json(status, &body)
}

/// The path segment after `name`: `segment_after("/prod/companies/abc/expenses", "companies")`
/// is `abc`. Works with or without an API Gateway stage prefix.
pub fn segment_after<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.by_ref().find(|s| *s == name)?;
    segments.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_with_and_without_stage() {
        assert_eq!(segment_after("/companies/abc/expenses", "companies"), Some("abc"));
        assert_eq!(segment_after("/prod/companies/abc/expenses/def", "expenses"), Some("def"));
        assert_eq!(segment_after("/companies", "companies"), None);
        assert_eq!(segment_after("/webhooks/codat", "companies"), None);
    }

    #[test]
    fn problems_name_the_field() {
        let response = problem(StatusCode::BAD_REQUEST, "validation", Some("expenses[0].id"), "must be a UUID");
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["field"], "expenses[0].id");
    }
}
