use expense_sync::domain::{CompanyId, ExpenseId};
use expense_sync::edge::{json, problem, segment_after};
use expense_sync::store::Store;
use lambda_http::http::{Method, Response, StatusCode};
use lambda_http::{Error, Request, RequestExt};

pub async fn handle(store: &Store, request: Request) -> Result<Response<String>, Error> {
    if request.method() != Method::GET {
        return Ok(problem(StatusCode::METHOD_NOT_ALLOWED, "method", None, "use GET"));
    }
    let params = request.path_parameters();
    let path = request.uri().path();
    let param = |name: &str, segment: &str| {
        params
            .first(name)
            .map(String::from)
            .or_else(|| segment_after(path, segment).map(String::from))
            .unwrap_or_default()
    };
    let Ok(company) = param("companyId", "companies").parse::<CompanyId>() else {
        return Ok(problem(StatusCode::BAD_REQUEST, "validation", Some("companyId"), "must be a UUID"));
    };
    let Ok(expense) = param("expenseId", "expenses").parse::<ExpenseId>() else {
        return Ok(problem(StatusCode::BAD_REQUEST, "validation", Some("expenseId"), "must be a UUID"));
    };
    Ok(match store.get_expense(company, expense).await {
        Ok(Some(expense)) => json(StatusCode::OK, &expense.view()),
        Ok(None) => problem(StatusCode::NOT_FOUND, "notFound", Some("expenseId"), "no such expense for this company"),
        Err(err) => {
            tracing::error!(error = %err, %company, %expense, "expense lookup failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "the expense could not be read; try again")
        }
    })
}
