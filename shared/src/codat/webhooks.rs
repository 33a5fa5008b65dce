//! Webhook bodies: the current `expenses.sync.*` events (the same in both APIs) and the
//! legacy `Sync Completed` / `Sync Failed` rule payloads.

use serde::{Deserialize, Serialize};

use crate::json::Object;

/// `ExpensesSyncWebhook`: the `expenses.sync.successful` / `expenses.sync.unsuccessful` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpensesSyncWebhook {
    #[serde(default)]
    pub id: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub generated_date: Option<String>,
    pub payload: Object<ExpensesSyncWebhookPayload>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpensesSyncWebhookPayload {
    pub reference_company: Object<CompanyReference>,
    pub sync_id: String,
    #[serde(default)]
    pub transactions: Vec<Object<ExpensesSyncWebhookTransaction>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompanyReference {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpensesSyncWebhookTransaction {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// `SyncCompleteWebhook` / `SyncFailedWebhook`: the legacy rule payloads (one shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacySyncWebhook {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    pub company_id: String,
    #[serde(default)]
    pub rule_id: Option<String>,
    pub rule_type: String,
    #[serde(default)]
    pub alert_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    pub data: Object<LegacySyncWebhookData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacySyncWebhookData {
    #[serde(rename = "syncId")]
    pub sync_id: String,
    #[serde(rename = "syncType", default)]
    pub sync_type: Option<String>,
    #[serde(rename = "FailureStage", default)]
    pub failure_stage: Option<String>,
}
