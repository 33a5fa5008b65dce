//! Telling the application that a sync finished (both APIs' syncs get the same webhooks).

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::state::Shared;
use crate::WebhookMode;

/// Sends the sync's `expenses.sync.*` webhook (or legacy rule payload), unless the company's
/// next webhooks are to be dropped. Retries a failed delivery twice.
pub async fn deliver(shared: &Shared, company: &str, sync_id: &str, successful: bool, transactions: Vec<Value>) {
    let Some(url) = shared.config.webhook_url.clone() else { return };
    {
        let mut inner = shared.lock();
        if let Some(count) = inner.webhooks_to_drop.get_mut(company).filter(|c| **c > 0) {
            *count -= 1;
            tracing::info!(%sync_id, "dropping the webhook as asked");
            return;
        }
    }
    let (body, headers) = match &shared.config.webhook_mode {
        WebhookMode::Off => return,
        WebhookMode::Svix { secret } => {
            let event_type = if successful { "expenses.sync.successful" } else { "expenses.sync.unsuccessful" };
            let body = json!({
                "id": Uuid::new_v4(),
                "eventType": event_type,
                "generatedDate": chrono::Utc::now().to_rfc3339(),
                "payload": {"referenceCompany": {"id": company, "name": "Sandbox company"}, "syncId": sync_id,
                            "transactions": transactions},
            })
            .to_string();
            let message_id = format!("msg_{}", Uuid::new_v4().simple());
            let timestamp = chrono::Utc::now().timestamp();
            let signer = match svix::webhooks::Webhook::new(secret) {
                Ok(signer) => signer,
                Err(e) => return tracing::error!("bad webhook secret: {e}"),
            };
            let signature = match signer.sign(&message_id, timestamp, body.as_bytes()) {
                Ok(signature) => signature,
                Err(e) => return tracing::error!("signing the webhook: {e}"),
            };
            let headers = vec![
                ("webhook-id".to_string(), message_id),
                ("webhook-timestamp".to_string(), timestamp.to_string()),
                ("webhook-signature".to_string(), signature),
            ];
            (body, headers)
        }
        WebhookMode::Legacy { authorization } => {
            let rule = if successful { "Sync Completed" } else { "Sync Failed" };
            let mut body = json!({
                "ClientId": Uuid::new_v4(), "ClientName": "Sandbox", "CompanyId": company,
                "RuleId": Uuid::new_v4(), "RuleType": rule, "AlertId": Uuid::new_v4(),
                "Message": format!("Sync {sync_id} for company {company} of type Expense {}.",
                                   if successful { "completed successfully" } else { "has failed at step Pushing" }),
                "Data": {"syncId": sync_id, "syncType": "Expense"},
            });
            if !successful {
                body["Data"]["FailureStage"] = json!("Pushing");
            }
            (body.to_string(), vec![("authorization".to_string(), authorization.clone())])
        }
    };
    // Codat retries at once, then after 5 s, 5 min, ...: the first steps, shortened.
    for (attempt, wait) in [0u64, 1, 5].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let mut request = shared.http.post(&url).header("content-type", "application/json").body(body.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        match request.timeout(Duration::from_secs(15)).send().await {
            Ok(response) if response.status().is_success() => {
                shared.lock().webhooks_sent += 1;
                tracing::info!(%sync_id, attempt, "webhook delivered");
                return;
            }
            Ok(response) => tracing::warn!(%sync_id, attempt, status = %response.status(), "webhook refused"),
            Err(e) => tracing::warn!(%sync_id, attempt, error = %e, "webhook not delivered"),
        }
    }
}
