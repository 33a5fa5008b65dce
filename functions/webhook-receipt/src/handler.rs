use expense_sync::domain::ReceivedNotice;
use expense_sync::edge::{json, problem, CODAT_WEBHOOK};
use expense_sync::store::Store;
use expense_sync::telemetry::{metered, Usage};
use expense_sync::webhook::{WebhookError, WebhookVerifier};

use lambda_http::http::{Response, StatusCode};
use lambda_http::{Error, Request};
use serde_json::json as value;
use tracing::Instrument;

/// The fast path: verify, record the notice (one conditional put), answer. The sync's outcome
/// is recorded from the notice's stream record by sync-initiation, so a sync of thousands of
/// transactions never holds Codat's 15-second delivery window.
pub struct Services {
    pub store: Store,
    pub verifier: WebhookVerifier,
}

impl Services {
    fn usage(&self) -> Usage {
        Usage { dynamodb_requests: self.store.requests_made(), codat_calls: 0 }
    }

    pub async fn from_env() -> Result<Self, Error> {
        let config = expense_sync::aws::sdk_config().await;
        let secret = |name| expense_sync::secrets::resolve(&config, name);
        let signing_secret = secret("CODAT_WEBHOOK_SECRET").await.ok();
        let legacy_authorization = secret("CODAT_LEGACY_WEBHOOK_AUTHORIZATION").await.ok();
        Ok(Self {
            store: Store::from_env(&config)?,
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
    let received = ReceivedNotice {
        webhook_id: delivery.id.clone(),
        company_id: notice.company_id,
        sync_id: notice.sync_id,
        successful: notice.successful,
        received_at: chrono::Utc::now(),
    };
    async {
        match services.store.record_notice(&received).await {
            Ok(true) => {
                tracing::info!("webhook recorded; its sync's outcome is recorded from the stream");
                Ok(json(StatusCode::OK, &value!({"queued": true})))
            }
            Ok(false) => Ok(json(StatusCode::OK, &value!({"duplicate": true}))),
            Err(err) => {
                // A non-2xx makes Codat redeliver; the schedule sweep also polls this sync.
                tracing::error!(error = %err, "webhook not recorded");
                Ok(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "retry",
                    None,
                    "the notice could not be recorded yet; redeliver",
                ))
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
        let now = chrono_now();
        let signed = |event: &mut serde_json::Value| {
            let body = event["body"].as_str().unwrap().to_string();
            let signature = svix::webhooks::Webhook::new(&secret).unwrap().sign(&id, now, body.as_bytes()).unwrap();
            event["headers"]["webhook-id"] = id.clone().into();
            event["headers"]["webhook-timestamp"] = now.to_string().into();
            event["headers"]["webhook-signature"] = signature.into();
        };
        let request = fixture("apigw-v2-webhook.json", signed);
        let first = handle(&services, request).await.unwrap();
        assert_eq!(first.status(), 200, "{}", first.body());
        assert!(first.body().contains("queued"), "{}", first.body());
        // Codat's redelivery of the same message is acknowledged and not recorded again.
        let again = handle(&services, fixture("apigw-v2-webhook.json", signed)).await.unwrap();
        assert_eq!(again.status(), 200, "{}", again.body());
        assert!(again.body().contains("duplicate"), "{}", again.body());
    }

    fn chrono_now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn uuid_like() -> String {
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
    }
}
