use expense_sync::codat::{self, CodatClient};
use expense_sync::domain::{ApprovalBatch, CodatApi, CompanyId, Expense, Stage, Status};
use expense_sync::edge::{invalid, json, problem, APPROVE_EXPENSES};
use expense_sync::flows::intake::{approve, Approved, IntakeError};
use expense_sync::receipts::ReceiptStore;
use expense_sync::secrets::codat_client;
use expense_sync::store::Store;
use expense_sync::telemetry::{metered, Usage};
use std::time::{Duration, Instant};

use lambda_http::http::{Response, StatusCode};
use lambda_http::{Error, Request, RequestExt};
use serde_json::json as value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub receipts: ReceiptStore,
    pub codat: CodatClient,
    /// `CODAT_API`: the API new approvals are validated for and created with.
    pub api: CodatApi,
}

impl Services {
    fn usage(&self) -> Usage {
        Usage { dynamodb_requests: self.store.requests_made(), codat_calls: self.codat.calls_made() }
    }

    pub async fn from_env() -> Result<Self, Error> {
        let config = expense_sync::aws::sdk_config().await;
        Ok(Self {
            store: Store::from_env(&config)?,
            receipts: ReceiptStore::from_env(&config)?,
            // API Gateway gives up after 30 s: leave room to record the outcome.
            codat: codat_client(&config, Duration::from_secs(15)).await?,
            api: codat::api_from_env()?,
        })
    }
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<String>, Error> {
    metered(|| services.usage(), handle_event(services, request)).await
}

async fn handle_event(services: &Services, request: Request) -> Result<Response<String>, Error> {
    if let Some(refusal) = APPROVE_EXPENSES.refuse_method(request.method()) {
        return Ok(refusal);
    }
    let gateway = request.path_parameters();
    let company = match APPROVE_EXPENSES.id_parameter(
        gateway.first("companyId"),
        raw_path(&request),
        "companyId",
        CompanyId::parse_canonical,
    ) {
        Ok(company) => company,
        Err(err) => return Ok(invalid(&err)),
    };
    let rules = codat::intake_rules(services.api);
    let batch = match ApprovalBatch::parse(company, request.body().as_ref(), rules) {
        Ok(batch) => batch,
        Err(err) => return Ok(invalid(&err)),
    };
    let span = tracing::info_span!("approval", company_id = %company, expenses = batch.expenses.len(), codat_api = %services.api);
    let deadline = invocation_deadline(&request);
    let result = approve(&batch, services.api, &services.store, &services.receipts, &services.codat, Some(deadline))
        .instrument(span)
        .await;
    Ok(match result {
        Ok(approved) => answer(company, &approved),
        Err(IntakeError::Conflict { field, expense_id }) => problem(
            StatusCode::CONFLICT,
            "conflict",
            Some(&field),
            &format!("expense {expense_id} was already approved with different content; use a new id"),
        ),
        Err(IntakeError::Interrupted(err)) => {
            tracing::error!(error = %err, "approval stored, submission interrupted");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "interrupted",
                None,
                "the approval is stored, but sending it to Codat was interrupted; the sweep sends it, and posting the same batch again is safe",
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "approval not recorded");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                None,
                "the approval could not be recorded; post the same batch again (it is safe to repeat)",
            )
        }
    })
}

/// When Lambda ends this invocation (API Gateway gives up at 30 s anyway): from the runtime's
/// deadline, or 29 s from now when the request carries no Lambda context.
fn invocation_deadline(request: &Request) -> Instant {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let left_ms = request
        .lambda_context_ref()
        .map(|context| u128::from(context.deadline).saturating_sub(now_ms))
        .filter(|left| *left > 0)
        .unwrap_or(29_000)
        .min(29_000);
    Instant::now() + Duration::from_millis(left_ms as u64)
}

/// 202 when every expense is on its way; otherwise the status says what went wrong and each
/// expense says how it stands.
fn answer(company: CompanyId, approved: &Approved) -> Response<String> {
    let expenses = &approved.expenses;
    // What this approval's creates met, not what later steps already recorded (a sync that
    // finished before this answer is the status API's to report).
    let at_submission = |status: Status| {
        expenses.iter().any(|e| e.status == status && e.failure.as_ref().is_some_and(|f| f.stage == Stage::Submission))
    };
    let any = |status: Status| expenses.iter().any(|e| e.status == status);
    let (status, note) = if at_submission(Status::Unconfirmed) {
        (StatusCode::BAD_GATEWAY, Some("Codat's answer was lost for some expenses; they need checking in Codat"))
    } else if approved.unresolved > 0 {
        (
            StatusCode::BAD_GATEWAY,
            Some("Codat's answer was lost for some expenses; they stay submitting while Codat's sync lists are checked, and continue on their own"),
        )
    } else if at_submission(Status::Failed) {
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Codat refused some expenses; see each expense's failure"))
    } else if expenses.iter().any(|e| e.status == Status::Approved && e.failure.is_some()) {
        (
            StatusCode::BAD_GATEWAY,
            Some("Codat refused access (see each expense's failure): check the API key, its permissions and the company; the expenses are saved and sent by the sweep once that is fixed"),
        )
    } else if approved.deferred > 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("Codat was too slow to send every expense within this request; the rest are saved as approved and sent by the sweep, or post the same batch again"),
        )
    } else if any(Status::Approved) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("Codat is unavailable; the expenses are saved: post the same batch again later"),
        )
    } else {
        (StatusCode::ACCEPTED, None)
    };
    let views: Vec<_> = expenses.iter().map(Expense::view).collect();
    json(status, &value!({"companyId": company, "expenses": views, "note": note}))
}

/// The path as the client sent it (the event's `rawPath`), or the URI's for events without one.
fn raw_path(request: &Request) -> &str {
    match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
        lambda_http::request::from_str(&e2e::fixture(name, edit).to_string()).expect("an API Gateway HTTP API event")
    }

    fn body(response: &Response<String>) -> serde_json::Value {
        serde_json::from_str(response.body()).unwrap()
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn a_base64_encoded_http_api_request_is_approved() {
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, fixture("apigw-v2-approve-base64.json", |_| {})).await.unwrap();
        assert_eq!(response.status(), 202, "{}", response.body());
        let answer = body(&response);
        assert_eq!(answer["expenses"][0]["expenseId"], "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01");
        assert_eq!(answer["expenses"][0]["receipt"]["contentType"], "image/png");
        // The same event again (an API Gateway or client retry) is a replay, not a new expense.
        let again = handle(&services, fixture("apigw-v2-approve-base64.json", |_| {})).await.unwrap();
        assert_eq!(again.status(), 202, "{}", again.body());
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn an_invalid_field_is_named() {
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, fixture("apigw-v2-approve-invalid.json", |_| {})).await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(body(&response)["field"], "expenses[0].currency");
    }
}
