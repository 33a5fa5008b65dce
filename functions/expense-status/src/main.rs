//! Expense status: `GET /companies/{companyId}/expenses/{expenseId}`.
//! The last arrow of the sync diagram: "Expense marked as uploaded".

mod handler;

use expense_sync::store::Store;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    let config = expense_sync::aws::sdk_config().await;
    let store = Store::from_env(&config)?;
    run(service_fn(|request| handler::handle(&store, request))).await
}
