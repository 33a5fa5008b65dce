//! Approval intake: `POST /companies/{companyId}/expenses`.
//! "User approves expenses with receipt" → "POST expense-transaction" → "datasetId".

mod handler;

use std::time::Duration;

use expense_sync::codat::CodatClient;
use expense_sync::receipts::ReceiptStore;
use expense_sync::store::Store;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    expense_sync::telemetry::init();
    let config = expense_sync::aws::sdk_config().await;
    let api_key = expense_sync::secrets::resolve(&config, "CODAT_API_KEY").await?;
    let services = handler::Services {
        store: Store::from_env(&config)?,
        receipts: ReceiptStore::from_env(&config)?,
        // API Gateway gives up after 30 s: leave room to record the outcome.
        codat: CodatClient::from_env(&api_key, Duration::from_secs(15))?,
    };
    run(service_fn(|request| handler::handle(&services, request))).await
}
