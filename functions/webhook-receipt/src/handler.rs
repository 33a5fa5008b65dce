use expense_sync::codat::CodatClient;
use expense_sync::edge::{json, problem, CODAT_WEBHOOK};
use expense_sync::flows::outcome::{record_sync_outcome, Recorded};
use expense_sync::flows::FlowError;
use expense_sync::store::Store;
use expense_sync::telemetry::{metered, Usage};
use expense_sync::webhook::{WebhookError, WebhookVerifier};
use std::time::Duration;

use lambda_http::http::{Response, StatusCode};
use lambda_http::{Error, Request};
use serde_json::json as value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub codat: CodatClient,
    pub verifier: WebhookVerifier,
}

impl Services {
    fn usage(&self) -> Usage {
        Usage { dynamodb_requests: self.store.requests_made(), codat_calls: self.codat.calls_made() }
    }

    pub async fn from_env() -> Result<Self, Error> {
        let config = expense_sync::aws::sdk_config().await;
        let secret = |name| expense_sync::secrets::resolve(&config, name);
        let signing_secret = secret("CODAT_WEBHOOK_SECRET").await.ok();
        let legacy_authorization = secret("CODAT_LEGACY_WEBHOOK_AUTHORIZATION").await.ok();
        Ok(Self {
            store: Store::from_env(&config)?,
            // Codat waits 15 s for an answer: a slow Codat makes us answer 503 and Codat redelivers.
            codat: expense_sync::secrets::codat_client(&config, Duration::from_secs(8)).await?,
            verifier: WebhookVerifier::new(signing_secret.as_deref(), legacy_authorization.as_deref())?,
        })
    }
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<String>, Error> {
    metered(|| services.usage(), handle_event(services, request)).await
}

async fn handle_event(services: &Services, request: Request) -> Result<Response<String>, Error> {
    if let Some(refusal) = CODAT_WEBHOOK.refuse_method(request.method()) {
        return Ok(refusal);
    }
    // Authenticate the raw bytes before anything reads them.
    let delivery = match services.verifier.verify(request.headers(), request.body().as_ref()) {
        Ok(delivery) => delivery,
        Err(err @ WebhookError::Unauthenticated(_)) => {
            tracing::warn!(error = %err, "webhook refused");
            return Ok(problem(StatusCode::UNAUTHORIZED, "unauthenticated", None, "signature verification failed"));
        }
        Err(WebhookError::Malformed { field, message }) => {
            return Ok(problem(StatusCode::BAD_REQUEST, "validation", Some(&field), &message))
        }
    };
    let Some(notice) = delivery.notice else {
        tracing::info!(webhook_id = %delivery.id, event_type = %delivery.event_type, "event type not handled");
        return Ok(json(StatusCode::OK, &value!({"ignored": delivery.event_type})));
    };
    let span = tracing::info_span!(
        "webhook",
        webhook_id = %delivery.id,
        company_id = %notice.company_id,
        sync_id = %notice.sync_id,
        successful = notice.successful,
    );
    async {
        match services.store.webhook_seen(&delivery.id).await {
            Ok(true) => return Ok(json(StatusCode::OK, &value!({"duplicate": true}))),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not check for a duplicate; processing anyway"),
        }
        // Recording is idempotent, so a delivery processed twice changes nothing.
        match record_sync_outcome(&services.store, &services.codat, notice.company_id, notice.sync_id).await {
            Ok(recorded) => {
                tracing::info!(?recorded, "webhook processed");
                // An unknown sync may be one whose initiation is still being recorded: leave
                // Codat's redeliveries free to find it then.
                if recorded != Recorded::UnknownSync {
                    if let Err(err) = services.store.remember_webhook(&delivery.id, notice.sync_id).await {
                        tracing::warn!(error = %err, "could not remember the delivery");
                    }
                }
                Ok(json(StatusCode::OK, &value!({"recorded": format!("{recorded:?}")})))
            }
            Err(err) => {
                // A non-2xx makes Codat redeliver; the schedule sweep also polls this sync.
                tracing::error!(error = %err, "sync outcome not recorded");
                let status = match err {
                    FlowError::Retry(_) => StatusCode::SERVICE_UNAVAILABLE,
                    FlowError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Ok(problem(status, "retry", None, "the outcome could not be recorded yet; redeliver"))
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
        lambda_http::request::from_str(&e2e::fixture(name, edit).to_string()).expect("an API Gateway HTTP API event")
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn a_stale_signature_is_refused() {
        let services = Services::from_env().await.unwrap();
        let response = handle(&services, fixture("apigw-v2-webhook.json", |_| {})).await.unwrap();
        assert_eq!(response.status(), 401, "{}", response.body());
    }

    #[tokio::test]
    #[ignore = "needs the local environment: run `local/devenv.py test`"]
    async fn a_freshly_signed_delivery_is_processed_and_deduplicated() {
        let services = Services::from_env().await.unwrap();
        let secret = std::env::var("CODAT_WEBHOOK_SECRET").unwrap();
        let id = format!("msg_{}", uuid_like());
        let request = fixture("apigw-v2-webhook.json", |event| {
            let body = event["body"].as_str().unwrap().to_string();
            let now = chrono_now();
            let signature = svix::webhooks::Webhook::new(&secret).unwrap().sign(&id, now, body.as_bytes()).unwrap();
            event["headers"]["webhook-id"] = id.clone().into();
            event["headers"]["webhook-timestamp"] = now.to_string().into();
            event["headers"]["webhook-signature"] = signature.into();
        });
        let first = handle(&services, request).await.unwrap();
        assert_eq!(first.status(), 200, "{}", first.body());
        // Not a sync this deployment started: acknowledged, nothing recorded.
        assert!(first.body().contains("UnknownSync"), "{}", first.body());
    }

    fn chrono_now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn uuid_like() -> String {
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
    }
}
