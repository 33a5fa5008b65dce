use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use expense_sync::codat::CodatClient;
use expense_sync::domain::CompanyId;
use expense_sync::flows::initiate::initiate_sync;
use expense_sync::flows::sweep::sweep;
use expense_sync::store::{ItemKeys, Store};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub codat: CodatClient,
    /// Only syncs older than this are polled: their webhook is late, presumably lost.
    pub poll_after: chrono::Duration,
}

/// A stream batch (`Records`) or a scheduled event (anything else).
pub async fn handle(services: &Services, event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("Records").is_some() {
        let stream: StreamEvent = serde_json::from_value(event.payload)?;
        let response = on_stream(services, stream).await;
        return Ok(serde_json::to_value(response)?);
    }
    let report =
        sweep(&services.store, &services.codat, services.poll_after).instrument(tracing::info_span!("sweep")).await?;
    tracing::info!(?report, "sweep done");
    Ok(serde_json::to_value(report)?)
}

/// Each record names a company that may have datasets to sync: a new dataset, or a released
/// lock. Records of a company whose initiation failed are reported failed, so only they retry.
async fn on_stream(services: &Services, event: StreamEvent) -> DynamoDbEventResponse {
    let mut by_company: Vec<(CompanyId, Vec<String>)> = Vec::new();
    for record in &event.records {
        let image = if record.event_name == "REMOVE" { &record.change.old_image } else { &record.change.new_image };
        let keys: ItemKeys = serde_dynamo::from_item(image.clone()).unwrap_or_default();
        let Some(company) = keys.company() else {
            tracing::warn!(pk = %keys.pk, "stream record without a company; skipped");
            continue;
        };
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        match by_company.iter_mut().find(|(c, _)| *c == company) {
            Some((_, sequences)) => sequences.push(sequence),
            None => by_company.push((company, vec![sequence])),
        }
    }
    let mut failures = Vec::new();
    for (company, sequences) in by_company {
        let span = tracing::info_span!("initiate", company_id = %company);
        match initiate_sync(&services.store, &services.codat, company).instrument(span).await {
            Ok(outcome) => tracing::info!(%company, ?outcome, "initiation"),
            Err(err) => {
                tracing::error!(%company, error = %err, "initiation failed; records will be retried");
                failures.extend(sequences.into_iter().map(|s| {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(s);
                    failure
                }));
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    response
}
