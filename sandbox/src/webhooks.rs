//! Running a sync and telling the application about it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::state::{Shared, TxnStatus};
use crate::WebhookMode;

/// Sum of netAmount + taxAmount over a transaction's lines, in hundredths (cents).
fn line_total(transaction: &Value) -> i64 {
    let cents = |v: &Value| (v.as_f64().unwrap_or(0.0) * 100.0).round() as i64;
    transaction["lines"]
        .as_array()
        .map(|lines| lines.iter().map(|l| cents(&l["netAmount"]) + cents(&l["taxAmount"])).sum())
        .unwrap_or(0)
}

/// After the configured delay, settles every transaction of the sync and sends the webhook.
pub async fn run_sync(shared: Arc<Shared>, company: String, sync_id: String) {
    tokio::time::sleep(shared.config.sync_delay).await;
    let transactions: Vec<Value> = {
        let mut inner = shared.lock();
        let state = inner.companies.get_mut(&company).expect("company of a running sync");
        let ids = state.sync_transactions(&sync_id);
        let mut report = Vec::new();
        for id in ids {
            let txn = state.transactions.get_mut(&id).expect("transaction of a dataset");
            let total = line_total(&txn.body);
            if total > 0 {
                txn.status = TxnStatus::Completed;
            } else {
                txn.status = TxnStatus::ValidationError;
                txn.message = Some(format!(
                    "The line item total {:.2} must be greater than zero for a {} transaction",
                    total as f64 / 100.0,
                    txn.body["type"].as_str().unwrap_or("Payment")
                ));
            }
            report.push(json!({
                "id": id,
                "status": if txn.status == TxnStatus::Completed { "Completed" } else { "Failed" },
                "errorMessage": txn.message,
            }));
        }
        let sync = state.syncs.get_mut(&sync_id).expect("running sync");
        sync.done = true;
        sync.finished = Some(chrono::Utc::now());
        state.running_syncs -= 1;
        report
    };
    let successful = transactions.iter().all(|t| t["status"] == "Completed");
    deliver(&shared, &company, &sync_id, successful, transactions).await;
}

async fn deliver(shared: &Shared, company: &str, sync_id: &str, successful: bool, transactions: Vec<Value>) {
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
            let signature = signer.sign(&message_id, timestamp, body.as_bytes()).expect("signing");
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
