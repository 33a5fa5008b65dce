use expense_sync::domain::{CompanyId, ExpenseId};
use expense_sync::edge::{invalid, json, problem, EXPENSE_STATUS};
use expense_sync::store::Store;
use expense_sync::telemetry::{metered, Usage};
use lambda_http::http::{Response, StatusCode};
use lambda_http::{Error, Request, RequestExt};

pub struct Services {
    pub store: Store,
}

impl Services {
    fn usage(&self) -> Usage {
        Usage { dynamodb_requests: self.store.requests_made(), codat_calls: 0 }
    }

    pub async fn from_env() -> Result<Self, Error> {
        let config = expense_sync::aws::sdk_config().await;
        Ok(Self { store: Store::from_env(&config)? })
    }
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<String>, Error> {
    metered(|| services.usage(), handle_event(services, request)).await
}

async fn handle_event(services: &Services, request: Request) -> Result<Response<String>, Error> {
    if let Some(refusal) = EXPENSE_STATUS.refuse_method(request.method()) {
        return Ok(refusal);
    }
    let gateway = request.path_parameters();
    let path = raw_path(&request);
    let ids = EXPENSE_STATUS
        .id_parameter(gateway.first("companyId"), path, "companyId", CompanyId::parse_canonical)
        .and_then(|company| {
            EXPENSE_STATUS
                .id_parameter(gateway.first("expenseId"), path, "expenseId", ExpenseId::parse_canonical)
                .map(|expense| (company, expense))
        });
    let (company, expense) = match ids {
        Ok(ids) => ids,
        Err(err) => return Ok(invalid(&err)),
    };
    Ok(match services.store.get_expense(company, expense).await {
        Ok(Some(expense)) => json(StatusCode::OK, &expense.view()),
        Ok(None) => problem(StatusCode::NOT_FOUND, "notFound", Some("expenseId"), "no such expense for this company"),
        Err(err) => {
            tracing::error!(error = %err, %company, %expense, "expense lookup failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "the expense could not be read; try again")
        }
    })
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

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn status_requests_as_api_gateway_sends_them() {
        let services = Services::from_env().await.unwrap();
        // An expense nobody approved (the approval fixture test approves the fixture's own id).
        let nobody = "9f0c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f";
        let unknown = handle(
            &services,
            fixture("apigw-v2-expense-status.json", |e| e["pathParameters"]["expenseId"] = nobody.into()),
        )
        .await
        .unwrap();
        assert_eq!(unknown.status(), 404, "{}", unknown.body());
        let bad = handle(
            &services,
            fixture("apigw-v2-expense-status.json", |e| e["pathParameters"]["expenseId"] = "nope".into()),
        )
        .await
        .unwrap();
        assert_eq!(bad.status(), 400);
        assert!(bad.body().contains("expenseId"));
    }
}
