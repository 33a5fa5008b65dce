use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use expense_sync::codat::CodatClient;
use expense_sync::domain::Status;
use expense_sync::flows::upload::{upload_receipt, Uploaded};
use expense_sync::receipts::ReceiptStore;
use expense_sync::store::{ItemKeys, Store};
use lambda_runtime::{Error, LambdaEvent};
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub receipts: ReceiptStore,
    pub codat: CodatClient,
}

/// Uploads the receipt of every expense that just became `synced`. Only the records that
/// failed in a retryable way are reported, so the others are not replayed.
pub async fn handle(services: &Services, event: LambdaEvent<StreamEvent>) -> Result<DynamoDbEventResponse, Error> {
    let mut failures = Vec::new();
    for record in event.payload.records {
        let keys: ItemKeys = serde_dynamo::from_item(record.change.new_image).unwrap_or_default();
        // The event source mapping filters these already; this keeps a broad filter harmless.
        if keys.kind.as_deref() != Some("expense") || keys.status.as_deref() != Some(Status::Synced.as_str()) {
            continue;
        }
        let (Some(company), Some(expense)) = (keys.company(), keys.expense()) else {
            tracing::warn!(pk = %keys.pk, sk = %keys.sk, "expense record with unreadable keys; skipped");
            continue;
        };
        let span = tracing::info_span!("upload", company_id = %company, expense_id = %expense);
        let result = upload_receipt(&services.store, &services.receipts, &services.codat, company, expense)
            .instrument(span.clone())
            .await;
        let _enter = span.enter();
        match result {
            Ok(Uploaded::Done { .. }) | Ok(Uploaded::Skipped { .. }) => {}
            Ok(outcome) => tracing::warn!(?outcome, "receipt not uploaded"),
            Err(err) => {
                tracing::error!(error = %err, "upload failed; record will be retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                failures.push(failure);
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}
