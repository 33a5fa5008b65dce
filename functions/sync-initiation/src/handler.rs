use std::time::Duration;

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use expense_sync::codat::CodatClient;
use expense_sync::domain::{CompanyId, ReceivedNotice};
use expense_sync::flows::deadline::Deadline;
use expense_sync::flows::initiate::initiate_sync;
use expense_sync::flows::outcome::record_notified_outcome;
use expense_sync::flows::sweep::{sweep, Patience, CLAIM_TIMEOUT, POLL_AFTER, REPORT_GRACE, SYNC_DEADLINE};
use expense_sync::secrets::codat_client;
use expense_sync::store::{ItemKeys, Store};
use expense_sync::telemetry::{metered, Usage};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub codat: CodatClient,
    pub patience: Patience,
}

impl Services {
    fn usage(&self) -> Usage {
        Usage { dynamodb_requests: self.store.requests_made(), codat_calls: self.codat.calls_made() }
    }

    pub async fn from_env() -> Result<Self, Error> {
        let config = expense_sync::aws::sdk_config().await;
        Ok(Self {
            store: Store::from_env(&config)?,
            codat: codat_client(&config, Duration::from_secs(20)).await?,
            patience: Patience {
                poll_after: seconds_from_env("SWEEP_POLL_AFTER_SECONDS")?.unwrap_or(POLL_AFTER),
                report_grace: seconds_from_env("SWEEP_REPORT_GRACE_SECONDS")?.unwrap_or(REPORT_GRACE),
                sync_deadline: seconds_from_env("SWEEP_SYNC_DEADLINE_SECONDS")?.unwrap_or(SYNC_DEADLINE),
                claim_timeout: seconds_from_env("SWEEP_CLAIM_TIMEOUT_SECONDS")?.unwrap_or(CLAIM_TIMEOUT),
            },
        })
    }
}

/// An optional duration in whole seconds from the environment.
fn seconds_from_env(name: &str) -> Result<Option<chrono::Duration>, Error> {
    match std::env::var(name) {
        Ok(seconds) => Ok(Some(chrono::Duration::seconds(seconds.parse().map_err(|e| format!("{name}: {e}"))?))),
        Err(_) => Ok(None),
    }
}

/// A stream batch (`Records`) or a scheduled event (anything else).
pub async fn handle(services: &Services, event: LambdaEvent<Value>) -> Result<Value, Error> {
    metered(|| services.usage(), handle_event(services, event)).await
}

async fn handle_event(services: &Services, event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("Records").is_some() {
        let stream: StreamEvent = serde_json::from_value(event.payload)?;
        let response = on_stream(services, stream).await;
        return Ok(serde_json::to_value(response)?);
    }
    let deadline = Deadline::from_epoch_ms(event.context.deadline);
    let report = sweep(&services.store, &services.codat, services.patience, deadline)
        .instrument(tracing::info_span!("sweep"))
        .await?;
    tracing::info!(?report, "sweep done");
    Ok(serde_json::to_value(report)?)
}

/// Each record is a webhook's notice that a sync finished (its outcome is recorded), or names a
/// company that may have datasets to sync: a new dataset, or a released lock. Failed records
/// (a notice not recorded, a company whose initiation failed) are reported, so only they retry.
async fn on_stream(services: &Services, event: StreamEvent) -> DynamoDbEventResponse {
    let mut by_company: Vec<(CompanyId, Vec<String>)> = Vec::new();
    let mut failures = Vec::new();
    for record in &event.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        if record.event_name == "INSERT" && is_kind(&record.change.new_image, "webhookNotice") {
            if !record_notice(services, &record.change.new_image).await {
                failures.push(sequence);
            }
            continue;
        }
        let image = if record.event_name == "REMOVE" { &record.change.old_image } else { &record.change.new_image };
        let keys: ItemKeys = serde_dynamo::from_item(image.clone()).unwrap_or_default();
        let Some(company) = keys.company() else {
            tracing::warn!(pk = %keys.pk, "stream record without a company; skipped");
            continue;
        };
        match by_company.iter_mut().find(|(c, _)| *c == company) {
            Some((_, sequences)) => sequences.push(sequence),
            None => by_company.push((company, vec![sequence])),
        }
    }
    for (company, sequences) in by_company {
        let span = tracing::info_span!("initiate", company_id = %company);
        match initiate_sync(&services.store, &services.codat, company).instrument(span).await {
            Ok(outcome) => tracing::info!(%company, ?outcome, "initiation"),
            Err(err) => {
                tracing::error!(%company, error = %err, "initiation failed; records will be retried");
                failures.extend(sequences);
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

fn is_kind(image: &serde_dynamo::Item, kind: &str) -> bool {
    matches!(image.get("kind"), Some(serde_dynamo::AttributeValue::S(k)) if k == kind)
}

/// Records the outcome of a notified sync; `false` when the record must be retried.
async fn record_notice(services: &Services, image: &serde_dynamo::Item) -> bool {
    let notice: ReceivedNotice = match serde_dynamo::from_item(image.clone()) {
        Ok(notice) => notice,
        Err(err) => {
            tracing::error!(error = %err, "unreadable webhook notice; skipped");
            return true;
        }
    };
    let span = tracing::info_span!("webhook", webhook_id = %notice.webhook_id, company_id = %notice.company_id,
        sync_id = %notice.sync_id, successful = notice.successful);
    match record_notified_outcome(&services.store, &services.codat, &notice).instrument(span.clone()).await {
        Ok(recorded) => {
            span.in_scope(|| tracing::info!(?recorded, "webhook processed"));
            true
        }
        Err(err) => {
            // The stream redelivers it; the schedule sweep also polls this sync.
            span.in_scope(|| tracing::warn!(error = %err, "sync outcome not recorded yet; will be retried"));
            false
        }
    }
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
    async fn the_eventbridge_schedule_runs_the_sweep() {
        let services = Services::from_env().await.unwrap();
        let report = handle(&services, event("example-eventbridge-schedule.json")).await.unwrap();
        assert!(report.get("syncsStarted").is_some() && report["errors"].as_array().is_some(), "{report}");
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn stream_records_of_other_items_fail_nothing() {
        // AWS's sample stream event: keys and attributes this table never writes.
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, event("example-dynamodb-event.json")).await.unwrap();
        assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    }
}
