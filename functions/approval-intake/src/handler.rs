use expense_sync::codat::CodatClient;
use expense_sync::domain::{ApprovalBatch, CompanyId, Expense, Status};
use expense_sync::edge::{json, problem, segment_after};
use expense_sync::flows::intake::{approve, IntakeError};
use expense_sync::receipts::ReceiptStore;
use expense_sync::store::Store;
use lambda_http::http::{Method, Response, StatusCode};
use lambda_http::{Error, Request, RequestExt};
use serde_json::json as value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub receipts: ReceiptStore,
    pub codat: CodatClient,
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<String>, Error> {
    if request.method() != Method::POST {
        return Ok(problem(StatusCode::METHOD_NOT_ALLOWED, "method", None, "use POST"));
    }
    let params = request.path_parameters();
    let raw_company = params
        .first("companyId")
        .map(String::from)
        .or_else(|| segment_after(request.uri().path(), "companies").map(String::from))
        .unwrap_or_default();
    let Ok(company) = raw_company.parse::<CompanyId>() else {
        return Ok(problem(StatusCode::BAD_REQUEST, "validation", Some("companyId"), "must be a UUID"));
    };
    let batch = match ApprovalBatch::parse(company, request.body().as_ref()) {
        Ok(batch) => batch,
        Err(err) => return Ok(problem(StatusCode::BAD_REQUEST, "validation", Some(&err.field), &err.message)),
    };
    let span = tracing::info_span!("approval", company_id = %company, expenses = batch.expenses.len());
    let result = approve(&batch, &services.store, &services.receipts, &services.codat).instrument(span).await;
    Ok(match result {
        Ok(expenses) => answer(company, &expenses),
        Err(IntakeError::Conflict { field, expense_id }) => problem(
            StatusCode::CONFLICT,
            "conflict",
            Some(&field),
            &format!("expense {expense_id} was already approved with different content; use a new id"),
        ),
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

/// 202 when every expense is on its way; otherwise the status says what went wrong and each
/// expense says how it stands.
fn answer(company: CompanyId, expenses: &[Expense]) -> Response<String> {
    let any = |status: Status| expenses.iter().any(|e| e.status == status);
    let (status, note) = if any(Status::Unconfirmed) {
        (StatusCode::BAD_GATEWAY, Some("Codat's answer was lost for some expenses; they need checking in Codat"))
    } else if any(Status::Failed) {
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Codat refused some expenses; see each expense's failure"))
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
