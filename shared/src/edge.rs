//! The HTTP edge shared by the API Gateway functions: JSON answers and path parameters.
//! Plain `http` types, so handlers stay testable without Lambda.

use http::{header, Method, Response, StatusCode};
use serde::Serialize;

/// A route an API Gateway function serves. `template.yaml` must declare exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub binary: &'static str,
    pub method: &'static str,
    pub path: &'static str,
}

pub const APPROVE_EXPENSES: Route =
    Route { binary: "approval-intake", method: "POST", path: "/companies/{companyId}/expenses" };
pub const EXPENSE_STATUS: Route =
    Route { binary: "expense-status", method: "GET", path: "/companies/{companyId}/expenses/{expenseId}" };
pub const CODAT_WEBHOOK: Route = Route { binary: "webhook-receipt", method: "POST", path: "/webhooks/codat" };
pub const ROUTES: [Route; 3] = [APPROVE_EXPENSES, EXPENSE_STATUS, CODAT_WEBHOOK];

impl Route {
    /// A `405` answer when the request does not use this route's method.
    pub fn refuse_method(&self, method: &Method) -> Option<Response<String>> {
        (method.as_str() != self.method)
            .then(|| problem(StatusCode::METHOD_NOT_ALLOWED, "method", None, &format!("use {}", self.method)))
    }

    /// The value of `{name}` in `path`: the segment after the one before `{name}` in the route.
    /// Works with API Gateway's path parameters missing (function URLs) and stage prefixes.
    pub fn parameter<'a>(&self, path: &'a str, name: &str) -> Option<&'a str> {
        let placeholder = format!("{{{name}}}");
        let segments: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        let position = segments.iter().position(|s| *s == placeholder)?;
        let before = *segments.get(position.checked_sub(1)?)?;
        segment_after(path, before)
    }
}

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
    fn route_parameters_come_from_the_path() {
        let path = "/prod/companies/abc/expenses/def";
        assert_eq!(EXPENSE_STATUS.parameter(path, "companyId"), Some("abc"));
        assert_eq!(EXPENSE_STATUS.parameter(path, "expenseId"), Some("def"));
        assert_eq!(APPROVE_EXPENSES.parameter("/companies/abc/expenses", "companyId"), Some("abc"));
        assert_eq!(CODAT_WEBHOOK.parameter("/webhooks/codat", "companyId"), None);
        assert!(APPROVE_EXPENSES.refuse_method(&Method::GET).is_some());
        assert!(APPROVE_EXPENSES.refuse_method(&Method::POST).is_none());
    }

    #[test]
    fn problems_name_the_field() {
        let response = problem(StatusCode::BAD_REQUEST, "validation", Some("expenses[0].id"), "must be a UUID");
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["field"], "expenses[0].id");
    }
}
