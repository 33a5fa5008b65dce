//! Codat's error body (`ErrorMessage`, the same in both APIs) and how a call failed.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CodatError {
    /// Codat answered with a 4xx: the request was refused and must change before a retry.
    #[error("Codat refused the request ({status}): {}", .error.summary())]
    Rejected { status: u16, error: ErrorMessage },
    /// Codat could not be reached or kept failing. `maybe_applied` is true when Codat may have
    /// acted on a creating request even so (a 500 or a lost answer), so it must not be repeated.
    #[error("Codat unavailable: {detail}")]
    Unavailable { maybe_applied: bool, detail: String },
}

impl CodatError {
    /// A refusal that says the account or its configuration is wrong (a revoked or rotated key,
    /// a key without access, billing, a company unknown to this Codat instance), not the
    /// request: Codat did nothing, and the same request succeeds once a person fixes it.
    pub fn is_access_refusal(&self) -> bool {
        matches!(self, CodatError::Rejected { status: 401..=404, .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CodatError::Rejected { status, .. } => Some(*status),
            CodatError::Unavailable { .. } => None,
        }
    }
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
