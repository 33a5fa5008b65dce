//! Receipt upload for an expense Codat synced as `Completed`.

use sha2::{Digest, Sha256};

use super::{apply_once, failure_from, FlowError};
use crate::codat::{CodatClient, CodatError};
use crate::domain::{CompanyId, Event, ExpenseId, Failure, Stage, Status};
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
    Unconfirmed {
        reason: String,
    },
}

pub async fn upload_receipt(
    store: &Store,
    receipts: &ReceiptStore,
    codat: &CodatClient,
    company: CompanyId,
    expense_id: ExpenseId,
) -> Result<Uploaded, FlowError> {
    let Some(mut expense) = store.get_expense(company, expense_id).await? else {
        return Err(FlowError::Retry(format!("expense {expense_id} not found")));
    };
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
