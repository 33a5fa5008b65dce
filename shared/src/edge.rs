//! The HTTP edge shared by the API Gateway functions: JSON answers and path parameters.
//! Plain `http` types, so handlers stay testable without Lambda.

use http::{header, Method, Response, StatusCode};
use serde::Serialize;

use crate::domain::ValidationError;

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

    /// The value of `{name}` in `path`, which must be this route's path segment for segment
    /// (after at most one stage prefix), with only clean segments ([`clean_segments`]), so the
    /// ids a handler acts on are exactly the ones the route names.
    pub fn parameter<'a>(&self, path: &'a str, name: &str) -> Option<&'a str> {
        let template: Vec<&str> = self.path.split('/').skip(1).collect();
        let segments = clean_segments(path)?;
        let stage = segments.len().checked_sub(template.len()).filter(|extra| *extra <= 1)?;
        let segments = &segments[stage..];
        if template.iter().zip(segments).any(|(t, s)| !t.starts_with('{') && t != s) {
            return None;
        }
        let placeholder = format!("{{{name}}}");
        template.iter().position(|t| *t == placeholder).map(|at| segments[at])
    }

    /// The id in `{name}`: API Gateway's path parameter when it sent one, else read from the
    /// path. `raw_path` is the path as the client sent it (lambda_http resolves dot segments
    /// in the URI it builds, so `/companies/A/../B` would otherwise read as company B).
    /// `Err` names what is wrong, for a 400 ([`invalid`]).
    pub fn id_parameter<T>(
        &self,
        gateway: Option<&str>,
        raw_path: &str,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ValidationError> {
        let bad_path =
            || ValidationError::new("path", format!("must be {}, without dot, empty or encoded segments", self.path));
        if clean_segments(raw_path).is_none() {
            return Err(bad_path());
        }
        let value = gateway.or_else(|| self.parameter(raw_path, name)).ok_or_else(bad_path)?;
        parse(value).ok_or_else(|| ValidationError::new(name, "must be a canonical UUID (lowercase, hyphenated)"))
    }
}

/// The segments of an absolute path, unless one is empty, `.`, `..` or percent-encoded (the
/// ids in our routes never need encoding; `%2e%2e` is a dot segment in disguise).
fn clean_segments(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let clean = segments.iter().all(|s| !(s.is_empty() || *s == "." || *s == ".." || s.contains('%')));
    clean.then_some(segments)
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<String> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_string(body).expect("response serializes"))
        .expect("static response parts are valid")
}

/// The 400 answer to a request field that is wrong.
pub fn invalid(error: &ValidationError) -> Response<String> {
    problem(StatusCode::BAD_REQUEST, "validation", Some(&error.field), &error.message)
}

/// A 4xx/5xx answer: `{"error": kind, "field": ..., "message": ...}`.
pub fn problem(status: StatusCode, kind: &str, field: Option<&str>, message: &str) -> Response<String> {
    let mut body = serde_json::json!({"error": kind, "message": message});
    if let Some(field) = field {
        body["field"] = field.into();
    }
    json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_parameters_come_from_the_path() {
        let path = "/prod/companies/abc/expenses/def";
        assert_eq!(EXPENSE_STATUS.parameter(path, "companyId"), Some("abc"));
        assert_eq!(EXPENSE_STATUS.parameter(path, "expenseId"), Some("def"));
        assert_eq!(APPROVE_EXPENSES.parameter("/companies/abc/expenses", "companyId"), Some("abc"));
        assert_eq!(CODAT_WEBHOOK.parameter("/webhooks/codat", "companyId"), None);
        for hostile in [
            "/companies/A/../B/expenses",
            "/companies/./abc/expenses",
            "/companies/%2e%2e/expenses",
            "/companies//abc/expenses",
            "/companies/abc/expenses/",
            "/x/y/companies/abc/expenses",
            "/companies/abc/other",
            "companies/abc/expenses",
        ] {
            assert_eq!(APPROVE_EXPENSES.parameter(hostile, "companyId"), None, "{hostile}");
        }
        assert_eq!(APPROVE_EXPENSES.parameter("/prod/companies/abc/expenses", "companyId"), Some("abc"));
        assert!(APPROVE_EXPENSES.refuse_method(&Method::GET).is_some());
        assert!(APPROVE_EXPENSES.refuse_method(&Method::POST).is_none());
    }

    #[test]
    fn ids_come_from_clean_paths_only() {
        let id = |s: &str| Some(s.to_string());
        let parse = |gateway, path| APPROVE_EXPENSES.id_parameter(gateway, path, "companyId", id);
        assert_eq!(parse(None, "/companies/abc/expenses"), Ok("abc".to_string()));
        assert_eq!(parse(Some("abc"), "/prod/companies/abc/expenses"), Ok("abc".to_string()));
        // A gateway parameter does not excuse a raw path that resolves elsewhere.
        assert_eq!(parse(Some("B"), "/companies/A/../B/expenses").unwrap_err().field, "path");
        assert_eq!(parse(None, "/companies/A/%2e%2e/B/expenses").unwrap_err().field, "path");
        let canonical = APPROVE_EXPENSES.id_parameter(None, "/companies/ABC/expenses", "companyId", |_| None::<()>);
        assert_eq!(canonical.unwrap_err().field, "companyId");
    }

    #[test]
    fn problems_name_the_field() {
        let response = problem(StatusCode::BAD_REQUEST, "validation", Some("expenses[0].id"), "must be a UUID");
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["field"], "expenses[0].id");
    }
}
