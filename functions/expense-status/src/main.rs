//! Expense status: `GET /companies/{companyId}/expenses/{expenseId}`.
//! The last arrow of the sync diagram: "Expense marked as uploaded".

mod handler;

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    // Clients and credentials are built once per cold start and shared by every invocation.
    let services = handler::Services::from_env().await?;
    run(service_fn(|event| handler::handle(&services, event))).await
}
