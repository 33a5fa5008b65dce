//! Request and response bodies of the v1 API. Enums Codat may extend keep unknown values
//! instead of failing a whole response.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{DatasetId, ExpenseId, SyncId};

/// `ExpenseTransaction.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionType {
    Payment,
    Refund,
    Reward,
    Chargeback,
    TransferIn,
    TransferOut,
    AdjustmentIn,
    AdjustmentOut,
}

/// `RecordRef`: an id from the company's mapping options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactType {
    Supplier,
}

/// `ContactRef`: the supplier the purchase is associated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_type: Option<ContactType>,
}

/// `ExpenseTransactionLine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseTransactionLine {
    pub net_amount: Decimal,
    pub tax_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate_ref: Option<RecordRef>,
    pub account_ref: RecordRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_refs: Option<Vec<RecordRef>>,
}

/// `ExpenseTransaction`: one item of a dataset. Its `id` is Codat's idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseTransaction {
    pub id: ExpenseId,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub issue_date: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_rate: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ref: Option<ContactRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub lines: Vec<ExpenseTransactionLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `CreateExpenseRequest`.
#[derive(Debug, Serialize)]
pub struct CreateExpenseRequest<'a> {
    pub items: &'a [ExpenseTransaction],
}

/// `CreateExpenseResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateExpenseResponse {
    pub dataset_id: DatasetId,
}

/// `PostSync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostSync {
    pub dataset_ids: Vec<DatasetId>,
}

/// `SyncInitiated`: the 202 answer to initiate sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInitiated {
    pub sync_id: SyncId,
}

/// `CompanySyncStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompanySyncStatus {
    pub company_id: Option<String>,
    pub sync_id: Option<String>,
    pub sync_status_code: i32,
    pub sync_status: Option<String>,
    pub error_message: Option<String>,
    pub sync_exception_message: Option<String>,
    pub sync_utc: Option<String>,
    pub data_pushed: Option<bool>,
}

impl CompanySyncStatus {
    /// Whether Codat has finished with the sync, successfully or not. Codat's codes are
    /// 2xxx for success and 3xxx and above for failures; lower codes mean queued or running.
    pub fn is_finished(&self) -> bool {
        if self.sync_status_code >= 2000 {
            return true;
        }
        let text = self.sync_status.as_deref().unwrap_or_default().to_ascii_lowercase();
        ["complete", "fail", "error"].iter().any(|word| text.contains(word))
    }
}

/// `TransactionStatus`, keeping values the YAML does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionStatus {
    Unknown,
    Pending,
    ValidationError,
    Completed,
    PushError,
    Other(String),
}

impl TransactionStatus {
    pub fn as_str(&self) -> &str {
        match self {
            TransactionStatus::Unknown => "Unknown",
            TransactionStatus::Pending => "Pending",
            TransactionStatus::ValidationError => "ValidationError",
            TransactionStatus::Completed => "Completed",
            TransactionStatus::PushError => "PushError",
            TransactionStatus::Other(other) => other,
        }
    }
}

impl<'de> Deserialize<'de> for TransactionStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(match value.as_str() {
            "Unknown" => TransactionStatus::Unknown,
            "Pending" => TransactionStatus::Pending,
            "ValidationError" => TransactionStatus::ValidationError,
            "Completed" => TransactionStatus::Completed,
            "PushError" => TransactionStatus::PushError,
            _ => TransactionStatus::Other(value),
        })
    }
}

impl Serialize for TransactionStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// `IntegrationType`: the YAML says `expenses`, the sync-process document says `expense`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrationType {
    Expenses,
    Bankfeeds,
    Other(String),
}

impl<'de> Deserialize<'de> for IntegrationType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(match value.to_ascii_lowercase().as_str() {
            "expenses" | "expense" => IntegrationType::Expenses,
            "bankfeeds" | "bankfeed" => IntegrationType::Bankfeeds,
            _ => IntegrationType::Other(value),
        })
    }
}

impl Serialize for IntegrationType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            IntegrationType::Expenses => "expenses",
            IntegrationType::Bankfeeds => "bankfeeds",
            IntegrationType::Other(other) => other,
        })
    }
}

/// `TransactionMetadata`: one transaction's outcome within a sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TransactionMetadata {
    pub transaction_id: Option<String>,
    pub status: Option<TransactionStatus>,
    pub message: Option<String>,
    /// Nullable; the YAML's default is `expenses`.
    pub integration_type: Option<IntegrationType>,
}

impl TransactionMetadata {
    /// The source document's rule for which transactions get their receipt uploaded.
    pub fn is_completed_expense(&self) -> bool {
        self.status == Some(TransactionStatus::Completed)
            && matches!(self.integration_type, None | Some(IntegrationType::Expenses))
    }
}

/// `TransactionMetadataList`: one page of a sync's transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionMetadataList {
    #[serde(default)]
    pub results: Vec<TransactionMetadata>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_results: u32,
    /// HAL links; the YAML's example spells it `links`. Pages are computed, never followed.
    #[serde(rename = "_links", alias = "links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<serde_json::Value>,
}

/// `Attachment`: the answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attachment {
    pub company_id: Option<String>,
    pub id: Option<String>,
    pub transaction_id: Option<String>,
}

/// `ErrorMessage`: Codat's error body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorMessage {
    pub status_code: Option<i64>,
    pub service: Option<String>,
    pub error: Option<String>,
    pub correlation_id: Option<String>,
    pub validation: Option<ErrorValidation>,
    pub can_be_retried: Option<String>,
    pub detailed_error_code: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorValidation {
    pub errors: Option<Vec<ErrorValidationItem>>,
    pub warnings: Option<Vec<ErrorValidationItem>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorValidationItem {
    pub item_id: Option<String>,
    pub message: Option<String>,
    pub validator_name: Option<String>,
}

impl ErrorMessage {
    /// One line a person can act on: the error and every validation message.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.error.clone().unwrap_or_else(|| "Codat refused the request".into())];
        if let Some(errors) = self.validation.as_ref().and_then(|v| v.errors.as_ref()) {
            for item in errors {
                let message = item.message.as_deref().unwrap_or("invalid");
                match &item.item_id {
                    Some(id) => parts.push(format!("{id}: {message}")),
                    None => parts.push(message.to_string()),
                }
            }
        }
        parts.join("; ")
    }
}

/// `ExpensesSyncWebhook`: the `expenses.sync.successful` / `expenses.sync.unsuccessful` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpensesSyncWebhook {
    #[serde(default)]
    pub id: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub generated_date: Option<String>,
    pub payload: ExpensesSyncWebhookPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpensesSyncWebhookPayload {
    pub reference_company: CompanyReference,
    pub sync_id: String,
    #[serde(default)]
    pub transactions: Vec<ExpensesSyncWebhookTransaction>,
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
    pub data: LegacySyncWebhookData,
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
