use expense_sync::codat::CodatClient;
use expense_sync::edge::{json, problem};
use expense_sync::flows::outcome::record_sync_outcome;
use expense_sync::flows::FlowError;
use expense_sync::store::Store;
use expense_sync::webhook::{WebhookError, WebhookVerifier};
use lambda_http::http::{Method, Response, StatusCode};
use lambda_http::{Error, Request};
use serde_json::json as value;
use tracing::Instrument;

pub struct Services {
    pub store: Store,
    pub codat: CodatClient,
    pub verifier: WebhookVerifier,
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<String>, Error> {
    if request.method() != Method::POST {
        return Ok(problem(StatusCode::METHOD_NOT_ALLOWED, "method", None, "use POST"));
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
                if let Err(err) = services.store.remember_webhook(&delivery.id, notice.sync_id).await {
                    tracing::warn!(error = %err, "could not remember the delivery");
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
