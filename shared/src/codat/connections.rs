//! Which accounting software a company is connected to (`GET /companies/{companyId}/connections`),
//! and what that software takes attachments for: the upload endpoint's "Integration-specific
//! behavior" table (`Codat-Sync-Expenses-current.yaml`), row for row.

use serde::{Deserialize, Serialize};

use crate::domain::{Entry, EntryKind};

/// `Connection`: the fields read here (the rest are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub id: Option<String>,
    pub integration_key: Option<String>,
    pub platform_name: Option<String>,
    /// `Accounting`, `Banking`, `BankFeed`, `Commerce`, `Expense`, `Other`, `Unknown`.
    pub source_type: Option<String>,
    /// `dataConnectionStatus`: `PendingAuth`, `Linked`, `Unlinked`, `Deauthorized`.
    pub status: Option<String>,
}

/// `Connections`: one page of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connections {
    pub results: Vec<Connection>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_results: u32,
}

impl Connections {
    /// The name of the accounting software the company is linked to, if any.
    pub fn accounting_platform(&self) -> Option<&str> {
        self.results
            .iter()
            .filter(|c| c.source_type.as_deref() == Some("Accounting") && c.status.as_deref() == Some("Linked"))
            .find_map(|c| c.platform_name.as_deref())
    }
}

/// Whether the software takes a file for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attaches {
    Yes,
    No {
        reason: String,
    },
    /// A platform the table does not name: the upload decides.
    Unknown,
}

/// The table's "Supported transactions" per integration, as (name, types taking a file);
/// `None` is "All supported types".
const SUPPORTED: &[(&str, Option<&[&str]>)] = &[
    ("quickbooks desktop", Some(&[])),
    ("quickbooks online", Some(&["Payment", "Refund", "Reimbursable"])),
    ("netsuite", Some(&["Payment", "Refund"])),
    ("freeagent", Some(&["Payment", "Reimbursable"])),
    ("zoho books", Some(&["Payment", "Reimbursable"])),
    ("xero", None),
    ("dynamics 365 business central", None),
];

/// Whether `platform` (a connection's `platformName`) takes an attachment for `entry`.
pub fn attaches(platform: &str, entry: &Entry) -> Attaches {
    if !entry.kind().takes_attachment() {
        return Attaches::No {
            reason: format!("Codat attaches no file to a {} in any integration", entry.kind().as_str()),
        };
    }
    let name = platform.to_ascii_lowercase();
    // "Oracle NetSuite" is the table's NetSuite.
    let Some((_, supported)) = SUPPORTED.iter().find(|(known, _)| name.contains(known)) else {
        return Attaches::Unknown;
    };
    let type_name = entry.type_name();
    match supported {
        None => Attaches::Yes,
        Some(types) if types.contains(&type_name) => Attaches::Yes,
        Some([]) => Attaches::No { reason: format!("{platform} does not support attachment upload") },
        Some(_) => {
            let what = if entry.kind() == EntryKind::Reimbursable {
                "reimbursable expenses".to_string()
            } else {
                format!("{type_name} expense transactions")
            };
            Attaches::No { reason: format!("{platform} takes no attachments for {what} (Codat's upload endpoint)") }
        }
    }
}

#[cfg(feature = "codat")]
mod calls {
    use reqwest::StatusCode;

    use super::Connections;
    use crate::codat::http::Effect;
    use crate::codat::{CodatClient, CodatError};
    use crate::domain::CompanyId;

    impl CodatClient {
        /// `GET /companies/{companyId}/connections`: the first page, which holds every
        /// connection of a company linked to a handful of platforms.
        pub async fn connections(&self, company: CompanyId) -> Result<Connections, CodatError> {
            let url = format!("{}/companies/{company}/connections?page=1&pageSize=100", self.base_url());
            self.send(Effect::ReadOnly, &[StatusCode::OK], || self.http.get(&url)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(kind: &str) -> Entry {
        serde_json::from_value(json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01", "type": kind,
            "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP", "lines": [{"netAmount": "5"}]}))
        .unwrap()
    }

    #[test]
    fn the_upload_tables_rows() {
        assert_eq!(attaches("Xero", &entry("Reward")), Attaches::Yes);
        assert_eq!(attaches("QuickBooks Online", &entry("Payment")), Attaches::Yes);
        assert_eq!(attaches("QuickBooks Online", &entry("Reimbursable")), Attaches::Yes);
        assert!(
            matches!(attaches("QuickBooks Online", &entry("Chargeback")), Attaches::No { reason } if reason.contains("Chargeback"))
        );
        assert!(matches!(attaches("QuickBooks Desktop", &entry("Payment")), Attaches::No { .. }));
        assert!(matches!(attaches("Oracle NetSuite", &entry("Reward")), Attaches::No { .. }));
        assert_eq!(attaches("Oracle NetSuite", &entry("Refund")), Attaches::Yes);
        assert!(matches!(attaches("Zoho Books", &entry("Refund")), Attaches::No { .. }));
        assert_eq!(attaches("Pandle", &entry("Reward")), Attaches::Unknown);
    }

    #[test]
    fn the_accounting_connection_is_the_linked_one() {
        let page: Connections = serde_json::from_value(json!({"results": [
            {"id": "1", "platformName": "Basiq", "sourceType": "Banking", "status": "Linked"},
            {"id": "2", "platformName": "Xero", "sourceType": "Accounting", "status": "Deauthorized"},
            {"id": "3", "platformName": "QuickBooks Online", "sourceType": "Accounting", "status": "Linked",
             "integrationId": "x", "linkUrl": "https://example.com"}
        ], "pageNumber": 1, "pageSize": 100, "totalResults": 3}))
        .unwrap();
        assert_eq!(page.accounting_platform(), Some("QuickBooks Online"));
    }
}
