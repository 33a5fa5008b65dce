//! What both APIs share unchanged: a sync's status, its transactions and their attachments
//! (the same paths and fields; the current YAML names the list `Transactions` and its items
//! `Transaction`, v1's `Transactions` / `Transaction`).

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{Event, ExpenseId, Failure, Stage};

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
    /// What Codat said went wrong, when the sync failed (a 3xxx-or-above code, or an error).
    pub fn failure_text(&self) -> Option<String> {
        let said = self.error_message.as_deref().or(self.sync_exception_message.as_deref()).filter(|t| !t.is_empty());
        match (self.sync_status_code >= 3000, said) {
            (_, Some(text)) => Some(format!("{}: {text}", self.sync_status_code)),
            (true, None) => {
                Some(format!("{} {}", self.sync_status_code, self.sync_status.as_deref().unwrap_or("failed")))
            }
            (false, None) => None,
        }
    }

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

/// `Transaction` (v1: `TransactionMetadata`): one transaction's outcome within a sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Transaction {
    pub transaction_id: Option<String>,
    pub status: Option<TransactionStatus>,
    pub message: Option<String>,
    /// Nullable; the YAML's default is `expenses`.
    pub integration_type: Option<IntegrationType>,
}

impl Transaction {
    /// The source document's rule for which transactions get their receipt uploaded.
    pub fn is_completed_expense(&self) -> bool {
        self.status == Some(TransactionStatus::Completed)
            && matches!(self.integration_type, None | Some(IntegrationType::Expenses))
    }

    /// Our expense id, when Codat reports one of ours.
    pub fn expense_id(&self) -> Option<ExpenseId> {
        self.transaction_id.as_deref()?.parse().ok()
    }

    /// The event this report means for its expense, of a kind that `takes_attachment` or not;
    /// `None` while Codat has not finished it.
    pub fn event(&self, takes_attachment: bool) -> Option<Event> {
        let status = self.status.as_ref()?;
        let failed = |reason: String| {
            Some(Event::TransactionFailed(Failure {
                stage: Stage::Sync,
                reason,
                codat_status: Some(status.as_str().to_string()),
                correlation_id: None,
            }))
        };
        match status {
            // Transfers and adjustments: in the books, and nothing to attach.
            TransactionStatus::Completed if !takes_attachment => Some(Event::TransactionRecorded),
            TransactionStatus::Completed if self.is_completed_expense() => Some(Event::TransactionCompleted),
            TransactionStatus::Completed => failed(format!(
                "Codat synced it as a {:?} transaction; receipts can only be attached to expense transactions",
                self.integration_type
            )),
            // Not a final word: a status the YAML does not list may yet turn into one, and a sync
            // whose transactions never get one is closed by the sweep after its grace period.
            TransactionStatus::Pending | TransactionStatus::Unknown | TransactionStatus::Other(_) => None,
            TransactionStatus::ValidationError | TransactionStatus::PushError => {
                failed(self.message.clone().unwrap_or_else(|| format!("Codat reported {}", status.as_str())))
            }
        }
    }
}

/// `Transactions` (v1: `TransactionMetadataList`): one page of a sync's transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transactions {
    #[serde(default)]
    pub results: Vec<Transaction>,
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

#[cfg(feature = "codat")]
mod calls {
    use reqwest::{multipart, StatusCode};

    use super::*;
    use crate::codat::http::Effect;
    use crate::codat::{CodatClient, CodatError};
    use crate::domain::{CompanyId, SyncId};

    impl CodatClient {
        /// `GET .../syncs/{syncId}/status`.
        pub async fn sync_status(&self, company: CompanyId, sync: SyncId) -> Result<CompanySyncStatus, CodatError> {
            let url = self.url(company, &format!("syncs/{sync}/status"));
            self.send(Effect::ReadOnly, &[StatusCode::OK], || self.http.get(&url)).await
        }

        /// `GET .../syncs/{syncId}/transactions`, every page (computed from `totalResults`).
        pub async fn sync_transactions(
            &self,
            company: CompanyId,
            sync: SyncId,
        ) -> Result<Vec<Transaction>, CodatError> {
            let url = self.url(company, &format!("syncs/{sync}/transactions"));
            let mut all = Vec::new();
            let mut page = 1u32;
            loop {
                let query = [("page", page), ("pageSize", self.page_size)];
                let list: Transactions =
                    self.send(Effect::ReadOnly, &[StatusCode::OK], || self.http.get(&url).query(&query)).await?;
                let received = list.results.len();
                all.extend(list.results);
                let page_size = if list.page_size == 0 { self.page_size } else { list.page_size };
                let pages = list.total_results.div_ceil(page_size);
                if received == 0 || page >= pages {
                    return Ok(all);
                }
                page += 1;
            }
        }

        /// `POST .../syncs/{syncId}/transactions/{transactionId}/attachments`, one `file` part.
        pub async fn upload_attachment(
            &self,
            company: CompanyId,
            sync: SyncId,
            transaction: ExpenseId,
            file_name: &str,
            content_type: &str,
            bytes: &[u8],
        ) -> Result<Attachment, CodatError> {
            let url = self.url(company, &format!("syncs/{sync}/transactions/{transaction}/attachments"));
            self.send(Effect::Creates, &[StatusCode::OK, StatusCode::CREATED], || {
                // The form is consumed by sending, so each attempt builds its own.
                let part = multipart::Part::bytes(bytes.to_vec())
                    .file_name(file_name.to_string())
                    .mime_str(content_type)
                    .unwrap_or_else(|_| multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_string()));
                self.http.post(&url).multipart(multipart::Form::new().part("file", part))
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(status: &str, integration: Option<IntegrationType>) -> Transaction {
        let mut transaction: Transaction = serde_json::from_value(serde_json::json!({"status": status})).unwrap();
        transaction.integration_type = integration;
        transaction.message = Some("The line item total must equal the transaction total".into());
        transaction
    }

    #[test]
    fn statuses_map_to_expense_events() {
        assert_eq!(
            reported("Completed", Some(IntegrationType::Expenses)).event(true),
            Some(Event::TransactionCompleted)
        );
        assert_eq!(reported("Completed", None).event(true), Some(Event::TransactionCompleted));
        assert!(matches!(
            reported("Completed", Some(IntegrationType::Bankfeeds)).event(true),
            Some(Event::TransactionFailed(_))
        ));
        assert_eq!(reported("Pending", None).event(true), None);
        assert_eq!(reported("Unknown", None).event(true), None);
        let Some(Event::TransactionFailed(failure)) = reported("ValidationError", None).event(true) else { panic!() };
        assert_eq!(failure.codat_status.as_deref(), Some("ValidationError"));
        assert!(failure.reason.contains("line item total"));
        // A status the YAML does not list is no final word: the sync stays open.
        assert_eq!(reported("SomethingNew", None).event(true), None);
        assert!(matches!(reported("PushError", None).event(true), Some(Event::TransactionFailed(_))));
    }
}
