use std::time::Duration;

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use expense_sync::codat::CodatClient;
use expense_sync::domain::{Expense, Status};
use expense_sync::flows::deadline::Deadline;
use expense_sync::flows::upload::{upload_receipt, Platforms, Uploaded};
use expense_sync::receipts::ReceiptStore;
use expense_sync::secrets::codat_client;
use expense_sync::store::{ItemKeys, Store};
use expense_sync::telemetry::{metered, Usage};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub receipts: ReceiptStore,
    pub codat: CodatClient,
    pub platforms: Platforms,
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
            codat: codat_client(&config, Duration::from_secs(20)).await?,
            platforms: Platforms::default(),
        })
    }
}

/// Beyond the upload call's retry budget: reading the receipt and the company's connections.
const UPLOAD_EXTRA: Duration = Duration::from_secs(5);

/// Uploads side by side in one invocation: each holds one receipt (at most 4 MB) in memory.
const UPLOADS_AT_ONCE: usize = 6;

/// Uploads the receipt of every expense that just became `synced`, several at a time. Only the
/// records that failed in a retryable way are reported, so the others are not replayed.
pub async fn handle(services: &Services, event: LambdaEvent<StreamEvent>) -> Result<DynamoDbEventResponse, Error> {
    metered(|| services.usage(), handle_event(services, event)).await
}

async fn handle_event(services: &Services, event: LambdaEvent<StreamEvent>) -> Result<DynamoDbEventResponse, Error> {
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let mut failed: Vec<(usize, Option<String>)> = stream::iter(event.payload.records.into_iter().enumerate())
        .map(|(position, record)| async move {
            let sequence = record.change.sequence_number.clone();
            (!upload_record(services, &deadline, record).await).then_some((position, sequence))
        })
        .buffer_unordered(UPLOADS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    // Lambda redelivers from the earliest record reported; list them in stream order.
    failed.sort_unstable_by_key(|(position, _)| *position);
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|(_, sequence)| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            failure
        })
        .collect();
    Ok(response)
}

/// Uploads one record's receipt; `false` when the record must be delivered again.
async fn upload_record(services: &Services, deadline: &Deadline, record: StreamRecord) -> bool {
    // No claim this invocation could not finish: this record is redelivered (and, as Lambda
    // resumes from the earliest one reported, those after it).
    if !deadline.allows(services.codat.retry_budget() + UPLOAD_EXTRA) {
        let left_ms = deadline.remaining().map(|left| left.as_millis() as u64);
        tracing::warn!(left_ms, "too little time left for another upload; the record is redelivered");
        return false;
    }
    let image = record.change.new_image;
    let keys: ItemKeys = serde_dynamo::from_item(image.clone()).unwrap_or_default();
    // The event source mapping filters these already; this keeps a broad filter harmless.
    if keys.kind.as_deref() != Some("expense") || keys.status.as_deref() != Some(Status::Synced.as_str()) {
        return true;
    }
    let (Some(company), Some(expense_id)) = (keys.company(), keys.expense()) else {
        tracing::warn!(pk = %keys.pk, sk = %keys.sk, "expense record with unreadable keys; skipped");
        return true;
    };
    let span = tracing::info_span!("upload", company_id = %company, expense_id = %expense_id);
    async {
        // The record carries the expense as it was written; one it cannot be read from (an
        // older item layout) is read from the table.
        let expense = match serde_dynamo::from_item::<_, Expense>(image) {
            Ok(expense) => expense,
            Err(err) => {
                tracing::info!(error = %err, "expense not readable from the stream record; reading the table");
                match services.store.get_expense(company, expense_id).await {
                    Ok(Some(expense)) => expense,
                    Ok(None) => {
                        tracing::error!("expense not found; record will be retried");
                        return false;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "expense not readable; record will be retried");
                        return false;
                    }
                }
            }
        };
        match upload_receipt(&services.store, &services.receipts, &services.codat, &services.platforms, expense).await {
            Ok(Uploaded::Done { .. }) | Ok(Uploaded::Skipped { .. }) | Ok(Uploaded::NotTaken { .. }) => true,
            Ok(outcome) => {
                tracing::warn!(?outcome, "receipt not uploaded");
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "upload failed; record will be retried");
                false
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<T: serde::de::DeserializeOwned>(name: &str) -> LambdaEvent<T> {
        let payload = serde_json::from_value(e2e::fixture(name, |_| {})).expect("the event type");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn a_synced_record_with_unknown_attributes_is_handled_and_reported_by_sequence_number() {
        // The expense the record names does not exist: that one record is reported failed.
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, event("dynamodb-stream-expense-synced.json")).await.unwrap();
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, vec![Some("4421584500000000017450439092".to_string())]);
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn records_that_are_not_synced_expenses_are_skipped() {
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, event("example-dynamodb-event.json")).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
}
