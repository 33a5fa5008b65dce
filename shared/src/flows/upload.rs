//! Receipt upload for an expense Codat synced as `Completed`, unless the company's accounting
//! software takes no file for it (Codat's upload table): then it is recorded without one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{apply_once, failure_from, FlowError};
use crate::codat::{attaches, Attaches, CodatClient, CodatError};
use crate::domain::{CompanyId, Event, Expense, Failure, Stage, Status};
use crate::receipts::ReceiptStore;
use crate::store::Store;

#[derive(Debug, PartialEq, Eq)]
pub enum Uploaded {
    Done {
        attachment_id: String,
    },
    /// Not ours to do: already uploaded, being uploaded elsewhere, or not synced.
    Skipped {
        status: Status,
    },
    Rejected {
        reason: String,
    },
    /// Codat refused access: left `synced` with the reason, for the sweep to requeue.
    Blocked {
        reason: String,
    },
    Unconfirmed {
        reason: String,
    },
    /// The company's software takes no file for it: recorded without one.
    NotTaken {
        reason: String,
    },
}

/// How long a warm instance trusts what it read of a company's connections: a company that
/// changes its accounting software is rare, and an upload it then refuses is recorded anyway.
const PLATFORM_TTL: Duration = Duration::from_secs(15 * 60);

/// Each company's accounting software, as last read (one Codat call per company and TTL,
/// not one per receipt).
#[derive(Default)]
pub struct Platforms {
    known: Mutex<HashMap<CompanyId, (Option<String>, Instant)>>,
    /// One read of connections at a time, so uploads running side by side for one company
    /// wait for the first one's answer instead of each asking Codat.
    reading: tokio::sync::Mutex<()>,
}

impl Platforms {
    fn cached(&self, company: CompanyId) -> Option<Option<String>> {
        let known = self.known.lock().expect("not poisoned");
        known.get(&company).filter(|(_, read_at)| read_at.elapsed() < PLATFORM_TTL).map(|(p, _)| p.clone())
    }

    /// The linked accounting software's name; `None` when there is none, or Codat could not
    /// say (the upload then decides).
    async fn of(&self, codat: &CodatClient, company: CompanyId) -> Option<String> {
        if let Some(platform) = self.cached(company) {
            return platform;
        }
        let _reading = self.reading.lock().await;
        if let Some(platform) = self.cached(company) {
            return platform;
        }
        let platform = match codat.connections(company).await {
            Ok(connections) => connections.accounting_platform().map(str::to_string),
            // Codat answered (a key without access to connections, say): ask again after the
            // TTL, not before every upload.
            Err(err @ CodatError::Rejected { .. }) => {
                tracing::warn!(error = %err, "Codat refused to list the company's connections; uploading anyway");
                None
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the company's connections now; uploading anyway");
                return None;
            }
        };
        self.known.lock().expect("not poisoned").insert(company, (platform.clone(), Instant::now()));
        platform
    }

    /// Whether the company's software takes a file for `expense`.
    async fn attaches(&self, codat: &CodatClient, expense: &Expense) -> Attaches {
        if !expense.entry.kind().takes_attachment() {
            return attaches("", &expense.entry);
        }
        match self.of(codat, expense.company_id).await {
            Some(platform) => attaches(&platform, &expense.entry),
            None => Attaches::Unknown,
        }
    }
}

/// Uploads the receipt of `expense` as the stream recorded it (`synced`). No read first: the
/// claim is a conditional write, and one that finds the expense moved on re-reads it.
pub async fn upload_receipt(
    store: &Store,
    receipts: &ReceiptStore,
    codat: &CodatClient,
    platforms: &Platforms,
    mut expense: Expense,
) -> Result<Uploaded, FlowError> {
    let (company, expense_id) = (expense.company_id, expense.expense_id);
    if expense.status == Status::Synced {
        if let Attaches::No { reason } = platforms.attaches(codat, &expense).await {
            if apply_once(store, &mut expense, Event::AttachmentNotTaken { reason: reason.clone() }).await? {
                tracing::info!(%reason, "recorded without an attachment");
                return Ok(Uploaded::NotTaken { reason });
            }
            return Ok(Uploaded::Skipped { status: expense.status });
        }
    }
    // The claim: of two invocations for the same record, only one gets past this write.
    if !apply_once(store, &mut expense, Event::UploadStarted).await? {
        return Ok(Uploaded::Skipped { status: expense.status });
    }
    let Some(sync_id) = expense.sync_id else {
        let failure = Failure::new(Stage::Upload, "expense has no sync id");
        apply_once(store, &mut expense, Event::UploadRejected(failure.clone())).await?;
        return Ok(Uploaded::Rejected { reason: failure.reason });
    };

    let Some(receipt) = expense.receipt.clone() else {
        let failure = Failure::new(Stage::Upload, "expense has no receipt to upload");
        apply_once(store, &mut expense, Event::UploadRejected(failure.clone())).await?;
        return Ok(Uploaded::Rejected { reason: failure.reason });
    };
    let bytes = match receipts.get(&receipt).await {
        Ok(bytes) => bytes,
        Err(err) => {
            apply_once(store, &mut expense, Event::UploadAbandoned).await?;
            return Err(FlowError::Retry(err.to_string()));
        }
    };
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if digest != receipt.sha256 {
        let failure = Failure::new(Stage::Upload, "the stored receipt does not match the approved one");
        apply_once(store, &mut expense, Event::UploadRejected(failure.clone())).await?;
        return Ok(Uploaded::Rejected { reason: failure.reason });
    }

    let result =
        codat.upload_attachment(company, sync_id, expense_id, &receipt.file_name, &receipt.content_type, &bytes).await;
    match result {
        Ok(attachment) => {
            let attachment_id = attachment.id.unwrap_or_default();
            apply_once(store, &mut expense, Event::ReceiptUploaded { attachment_id: attachment_id.clone() }).await?;
            tracing::info!(%attachment_id, "receipt uploaded");
            Ok(Uploaded::Done { attachment_id })
        }
        Err(err) if err.is_access_refusal() => {
            crate::alert::codat_access_refused("upload", &err, 1);
            let failure = failure_from(Stage::Upload, &err);
            apply_once(store, &mut expense, Event::UploadBlocked(failure.clone())).await?;
            Ok(Uploaded::Blocked { reason: failure.reason })
        }
        Err(err @ CodatError::Rejected { .. }) => {
            let failure = failure_from(Stage::Upload, &err);
            apply_once(store, &mut expense, Event::UploadRejected(failure.clone())).await?;
            Ok(Uploaded::Rejected { reason: failure.reason })
        }
        Err(CodatError::Unavailable { maybe_applied: false, detail }) => {
            apply_once(store, &mut expense, Event::UploadAbandoned).await?;
            Err(FlowError::Retry(detail))
        }
        Err(err @ CodatError::Unavailable { maybe_applied: true, .. }) => {
            let failure = failure_from(Stage::Upload, &err);
            apply_once(store, &mut expense, Event::UploadUnconfirmed(failure.clone())).await?;
            Ok(Uploaded::Unconfirmed { reason: failure.reason })
        }
    }
}
