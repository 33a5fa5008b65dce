//! The expense life-cycle as one state machine.
//!
//! ```text
//!                         (v1: dataset)
//!                       ┌─▶ submitted ─┐
//! approved ─▶ submitting ─────────────────▶ syncing ─▶ synced ─▶ uploading ─▶ uploaded
//!    ▲            │ │    (current API: sync)   │          ▲          │ │
//!    └─abandoned──┘ │            │             │          └─abandoned┘ │
//!                   ▼            ▼             ▼                       ▼
//!        failed / unconfirmed  failed  failed / unconfirmed  uploadFailed / unconfirmed
//! ```
//!
//! `submitting` and `uploading` are claims taken before a non-idempotent Codat call, so two
//! invocations never make the same call. When the call provably did not reach Codat the claim
//! is abandoned (and retried later); when Codat's answer was lost the expense becomes
//! `unconfirmed` for a person to check, instead of risking a duplicate transaction or receipt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CodatApi, CompanyId, DatasetId, Entry, ExpenseId, SyncId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Approved,
    Submitting,
    Submitted,
    Syncing,
    Synced,
    Uploading,
    Uploaded,
    /// In the accounting software; Codat takes no file for this kind (a transfer or an
    /// adjustment), so there is nothing to upload.
    RecordedWithoutAttachment,
    Failed,
    UploadFailed,
    Unconfirmed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Submitting => "submitting",
            Status::Submitted => "submitted",
            Status::Syncing => "syncing",
            Status::Synced => "synced",
            Status::Uploading => "uploading",
            Status::Uploaded => "uploaded",
            Status::RecordedWithoutAttachment => "recordedWithoutAttachment",
            Status::Failed => "failed",
            Status::UploadFailed => "uploadFailed",
            Status::Unconfirmed => "unconfirmed",
        }
    }

    /// No event moves an expense out of a final status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Uploaded
                | Status::RecordedWithoutAttachment
                | Status::Failed
                | Status::UploadFailed
                | Status::Unconfirmed
        )
    }

    /// How far along the happy path a status is; final statuses are past everything.
    fn progress(self) -> u8 {
        match self {
            Status::Approved => 0,
            Status::Submitting => 1,
            Status::Submitted => 2,
            Status::Syncing => 3,
            Status::Synced => 4,
            Status::Uploading => 5,
            Status::Uploaded
            | Status::RecordedWithoutAttachment
            | Status::Failed
            | Status::UploadFailed
            | Status::Unconfirmed => 9,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the flow a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    Submission,
    SyncInitiation,
    Sync,
    Upload,
}

/// Why an expense did not make it, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub stage: Stage,
    pub reason: String,
    /// Codat's HTTP status or transaction status, when Codat gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codat_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl Failure {
    pub fn new(stage: Stage, reason: impl Into<String>) -> Self {
        Self { stage, reason: reason.into(), codat_status: None, correlation_id: None }
    }
}

/// Where the receipt bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRef {
    pub key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// An expense as stored: what was approved and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expense {
    pub company_id: CompanyId,
    pub expense_id: ExpenseId,
    pub status: Status,
    /// The Codat API it was approved for, and is created and synced with.
    #[serde(default = "CodatApi::legacy")]
    pub api: CodatApi,
    /// What was approved (stored as `transaction`, its name before transfers and adjustments).
    #[serde(rename = "transaction")]
    pub entry: Entry,
    /// Absent for kinds Codat attaches no file to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptRef>,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<DatasetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<SyncId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Why an expense that takes receipts ended without one (its software takes none for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub approved_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Expense {
    /// Whether this stored expense is what `approved` says (a replay, not a conflict). The
    /// fingerprint answers at once; records fingerprinted before amounts were exact (as
    /// floats) are compared field by field.
    pub fn is_approval_of(&self, approved: &super::ApprovedExpense) -> bool {
        let same_receipt = match (&self.receipt, &approved.receipt) {
            (None, None) => true,
            (Some(stored), Some(sent)) => {
                stored.file_name == sent.file_name
                    && stored.content_type == sent.content_type
                    && stored.sha256 == sent.sha256_hex()
            }
            _ => false,
        };
        self.fingerprint == approved.fingerprint() || (self.entry == approved.entry && same_receipt)
    }

    /// The first field where `approved` differs from this stored expense, as a path in the
    /// request (e.g. `transfers[0].to.amount`), for a 409 that says what changed.
    pub fn difference_from(&self, approved: &super::ApprovedExpense) -> String {
        let at = &approved.at;
        let stored = serde_json::to_value(&self.entry).unwrap_or_default();
        let sent = serde_json::to_value(&approved.entry).unwrap_or_default();
        if let Some(path) = first_difference(&stored, &sent) {
            return format!("{at}{path}");
        }
        match (&self.receipt, &approved.receipt) {
            (Some(stored), Some(sent)) if stored.file_name != sent.file_name => format!("{at}.receipt.fileName"),
            (Some(stored), Some(sent)) if stored.content_type != sent.content_type => {
                format!("{at}.receipt.contentType")
            }
            (Some(_), Some(_)) => format!("{at}.receipt.data"),
            (None, None) => format!("{at}.id"),
            _ => format!("{at}.receipt"),
        }
    }

    /// Why it ended without an attachment, when it did.
    pub fn note(&self) -> Option<String> {
        if self.status != Status::RecordedWithoutAttachment {
            return None;
        }
        self.note
            .clone()
            .or_else(|| Some(format!("Codat attaches no file to a {} in any integration", self.entry.kind().as_str())))
    }

    /// What the user sees of an expense: its progress and, if it stopped, why.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "companyId": self.company_id,
            "expenseId": self.expense_id,
            "status": self.status,
            "kind": self.entry.kind(),
            "type": self.entry.type_name(),
            "codatApi": self.api,
            "datasetId": self.dataset_id,
            "syncId": self.sync_id,
            "attachmentId": self.attachment_id,
            "failure": self.failure,
            "note": self.note(),
            "receipt": self.receipt.as_ref().map(|r| serde_json::json!({
                "fileName": r.file_name,
                "contentType": r.content_type,
                "size": r.size,
            })),
            "approvedAt": self.approved_at,
            "updatedAt": self.updated_at,
        })
    }
}

/// Where two JSON values first differ, as `.field`, `.list[2].field` or `` (the values
/// themselves); `None` when they are equal.
fn first_difference(stored: &serde_json::Value, sent: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (stored, sent) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().collect();
            keys.extend(b.keys().filter(|key| !a.contains_key(*key)));
            keys.into_iter().find_map(|key| match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) => first_difference(x, y).map(|rest| format!(".{key}{rest}")),
                (None, None) => None,
                _ => Some(format!(".{key}")),
            })
        }
        (Value::Array(a), Value::Array(b)) => {
            let found = a
                .iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y).map(|rest| format!("[{i}]{rest}")));
            found.or_else(|| (a.len() != b.len()).then(|| format!("[{}]", a.len().min(b.len()))))
        }
        (a, b) if a == b => None,
        _ => Some(String::new()),
    }
}

/// Something that happened to an expense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// About to post it to Codat in a dataset.
    SubmissionStarted,
    /// The post provably never reached Codat: try again later.
    SubmissionAbandoned,
    /// Codat refused access (the key, the company, billing): nothing was created, and the
    /// sweep submits it again once that is fixed. The failure says why it waits.
    SubmissionBlocked(Failure),
    DatasetCreated {
        dataset_id: DatasetId,
    },
    /// Codat's current API created the transaction and queued its sync itself.
    SyncCreated {
        sync_id: SyncId,
    },
    SubmissionRejected(Failure),
    /// Codat may or may not have created it: never post it again without a person checking.
    SubmissionUnconfirmed(Failure),
    SyncStarted {
        sync_id: SyncId,
    },
    SyncRejected(Failure),
    /// Codat reports the transaction `Completed` as an expense.
    TransactionCompleted,
    /// Codat reports `Completed` a kind it attaches no file to: nothing is left to do.
    TransactionRecorded,
    /// The company's accounting software takes no file for this expense (Codat's upload
    /// table), so there is nothing to upload.
    AttachmentNotTaken {
        reason: String,
    },
    TransactionFailed(Failure),
    /// Codat finished the sync long ago but never reported this transaction: whether it
    /// reached the accounting software is unknown.
    TransactionUnreported(Failure),
    UploadStarted,
    UploadAbandoned,
    /// Codat refused access to upload: nothing was attached, and the sweep requeues the upload.
    UploadBlocked(Failure),
    ReceiptUploaded {
        attachment_id: String,
    },
    UploadRejected(Failure),
    UploadUnconfirmed(Failure),
}

impl Event {
    /// Whether the event is progress that makes an earlier attempt's failure (a blocked or
    /// abandoned one) history.
    pub fn clears_failure(&self) -> bool {
        matches!(
            self,
            Event::SubmissionAbandoned
                | Event::UploadAbandoned
                | Event::DatasetCreated { .. }
                | Event::SyncCreated { .. }
                | Event::SyncStarted { .. }
                | Event::TransactionCompleted
                | Event::TransactionRecorded
                | Event::AttachmentNotTaken { .. }
                | Event::ReceiptUploaded { .. }
        )
    }

    /// The status this event leads to, and the status it must start from.
    fn edge(&self) -> (Status, Status) {
        use Status::*;
        match self {
            Event::SubmissionStarted => (Approved, Submitting),
            Event::SubmissionAbandoned | Event::SubmissionBlocked(_) => (Submitting, Approved),
            Event::DatasetCreated { .. } => (Submitting, Submitted),
            Event::SyncCreated { .. } => (Submitting, Syncing),
            Event::SubmissionRejected(_) => (Submitting, Failed),
            Event::SubmissionUnconfirmed(_) => (Submitting, Unconfirmed),
            Event::SyncStarted { .. } => (Submitted, Syncing),
            Event::SyncRejected(_) => (Submitted, Failed),
            Event::TransactionCompleted => (Syncing, Synced),
            Event::TransactionRecorded => (Syncing, RecordedWithoutAttachment),
            Event::TransactionFailed(_) => (Syncing, Failed),
            Event::TransactionUnreported(_) => (Syncing, Unconfirmed),
            Event::AttachmentNotTaken { .. } => (Synced, RecordedWithoutAttachment),
            Event::UploadStarted => (Synced, Uploading),
            Event::UploadAbandoned | Event::UploadBlocked(_) => (Uploading, Synced),
            Event::ReceiptUploaded { .. } => (Uploading, Uploaded),
            Event::UploadRejected(_) => (Uploading, UploadFailed),
            Event::UploadUnconfirmed(_) => (Uploading, Unconfirmed),
        }
    }
}

/// A checked move from one status to the next; the store makes it one conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTransition {
    /// The expense is already at or past where the event would take it (a replayed event).
    #[error("expense is already {current}; {event:?} has nothing left to do")]
    AlreadyDone { current: Status, event: Event },
    #[error("expense is {current}; {event:?} only applies to a {expected} expense")]
    NotApplicable { current: Status, expected: Status, event: Event },
}

/// The one transition function: where `event` takes an expense that is `current`.
pub fn transition(current: Status, event: Event) -> Result<Transition, InvalidTransition> {
    let (from, to) = event.edge();
    if current == from {
        return Ok(Transition { from, to, event });
    }
    let moves_back = to.progress() < from.progress();
    if !moves_back && current.progress() >= to.progress() {
        return Err(InvalidTransition::AlreadyDone { current, event });
    }
    Err(InvalidTransition::NotApplicable { current, expected: from, event })
}

impl Expense {
    pub fn transition(&self, event: Event) -> Result<Transition, InvalidTransition> {
        transition(self.status, event)
    }

    /// The expense after `transition` (what the store's conditional write leaves behind).
    pub fn apply(&mut self, transition: &Transition, now: DateTime<Utc>) {
        debug_assert_eq!(self.status, transition.from);
        self.status = transition.to;
        self.updated_at = now;
        if transition.event.clears_failure() {
            self.failure = None;
        }
        match &transition.event {
            Event::DatasetCreated { dataset_id } => self.dataset_id = Some(*dataset_id),
            Event::SyncStarted { sync_id } | Event::SyncCreated { sync_id } => self.sync_id = Some(*sync_id),
            Event::ReceiptUploaded { attachment_id } => self.attachment_id = Some(attachment_id.clone()),
            Event::AttachmentNotTaken { reason } => self.note = Some(reason.clone()),
            Event::SubmissionRejected(f)
            | Event::SubmissionBlocked(f)
            | Event::UploadBlocked(f)
            | Event::SubmissionUnconfirmed(f)
            | Event::SyncRejected(f)
            | Event::TransactionFailed(f)
            | Event::UploadRejected(f)
            | Event::TransactionUnreported(f)
            | Event::UploadUnconfirmed(f) => self.failure = Some(f.clone()),
            Event::SubmissionStarted
            | Event::SubmissionAbandoned
            | Event::TransactionCompleted
            | Event::TransactionRecorded
            | Event::UploadStarted
            | Event::UploadAbandoned => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure::new(Stage::Sync, "line totals do not match")
    }

    fn sample_expense() -> Expense {
        let entry: Entry = serde_json::from_value(serde_json::json!({"id": "0b8f5c9e-3d41-4c8e-9a57-2f6d1e4b7a01",
            "type": "Payment", "issueDate": "2024-05-21T00:00:00Z", "currency": "GBP", "lines": [{"netAmount": "5"}]}))
        .unwrap();
        let now = Utc::now();
        Expense {
            company_id: "8a210b68-6988-11ed-a1eb-0242ac120002".parse().unwrap(),
            expense_id: entry.id(),
            status: Status::Approved,
            api: CodatApi::Expenses,
            entry,
            receipt: None,
            fingerprint: String::new(),
            dataset_id: None,
            sync_id: None,
            attachment_id: None,
            failure: None,
            note: None,
            approved_at: now,
            updated_at: now,
        }
    }

    fn walk(events: Vec<Event>) -> Status {
        events.into_iter().fold(Status::Approved, |status, event| transition(status, event).unwrap().to)
    }

    #[test]
    fn a_refused_access_leaves_the_expense_retryable_with_its_reason_until_it_goes_through() {
        let blocked = Failure::new(Stage::Submission, "Unauthorized");
        let mut expense = sample_expense();
        for (event, status) in [
            (Event::SubmissionStarted, Status::Submitting),
            (Event::SubmissionBlocked(blocked.clone()), Status::Approved),
        ] {
            let t = expense.transition(event).unwrap();
            expense.apply(&t, Utc::now());
            assert_eq!(expense.status, status);
        }
        assert!(!expense.status.is_final());
        assert_eq!(expense.failure.as_ref(), Some(&blocked), "the user sees why it waits");
        for event in [Event::SubmissionStarted, Event::SyncCreated { sync_id: SyncId::random() }] {
            let t = expense.transition(event).unwrap();
            expense.apply(&t, Utc::now());
        }
        assert_eq!((expense.status, expense.failure.as_ref()), (Status::Syncing, None));
        let upload_blocked = Failure::new(Stage::Upload, "Forbidden");
        for event in [Event::TransactionCompleted, Event::UploadStarted, Event::UploadBlocked(upload_blocked)] {
            let t = expense.transition(event).unwrap();
            expense.apply(&t, Utc::now());
        }
        assert_eq!(expense.status, Status::Synced, "an upload refused access waits for the sweep's requeue");
        assert!(expense.failure.is_some());
    }

    #[test]
    fn happy_path_reaches_uploaded() {
        let status = walk(vec![
            Event::SubmissionStarted,
            Event::DatasetCreated { dataset_id: DatasetId::random() },
            Event::SyncStarted { sync_id: SyncId::random() },
            Event::TransactionCompleted,
            Event::UploadStarted,
            Event::ReceiptUploaded { attachment_id: "1".into() },
        ]);
        assert_eq!(status, Status::Uploaded);
        assert!(status.is_final());
    }

    #[test]
    fn on_the_current_api_the_create_starts_the_sync() {
        let status = walk(vec![
            Event::SubmissionStarted,
            Event::SyncCreated { sync_id: SyncId::random() },
            Event::TransactionCompleted,
            Event::UploadStarted,
            Event::ReceiptUploaded { attachment_id: "1".into() },
        ]);
        assert_eq!(status, Status::Uploaded);
        // A lost answer resolved twice (intake and the sweep) moves the expense once.
        assert!(matches!(
            transition(Status::Syncing, Event::SyncCreated { sync_id: SyncId::random() }),
            Err(InvalidTransition::AlreadyDone { .. })
        ));
    }

    #[test]
    fn a_kind_without_attachments_ends_recorded_and_never_waits_for_an_upload() {
        let status = walk(vec![
            Event::SubmissionStarted,
            Event::SyncCreated { sync_id: SyncId::random() },
            Event::TransactionRecorded,
        ]);
        assert_eq!(status, Status::RecordedWithoutAttachment);
        assert!(status.is_final());
        assert!(transition(status, Event::UploadStarted).is_err());
        assert!(matches!(transition(status, Event::TransactionRecorded), Err(InvalidTransition::AlreadyDone { .. })));
    }

    #[test]
    fn failures_are_final() {
        let failed = walk(vec![
            Event::SubmissionStarted,
            Event::DatasetCreated { dataset_id: DatasetId::random() },
            Event::SyncStarted { sync_id: SyncId::random() },
            Event::TransactionFailed(failure()),
        ]);
        assert_eq!(failed, Status::Failed);
        assert!(matches!(transition(failed, Event::UploadStarted), Err(InvalidTransition::AlreadyDone { .. })));
    }

    #[test]
    fn a_transaction_codat_never_reported_is_unconfirmed_not_failed() {
        let t = transition(Status::Syncing, Event::TransactionUnreported(failure())).unwrap();
        assert_eq!(t.to, Status::Unconfirmed);
        // Once Codat did report it, a late give-up changes nothing.
        assert!(transition(Status::Synced, Event::TransactionUnreported(failure())).is_err());
        assert!(transition(Status::Uploaded, Event::TransactionUnreported(failure())).is_err());
    }

    #[test]
    fn claims_can_be_abandoned_but_only_from_the_claim() {
        assert_eq!(walk(vec![Event::SubmissionStarted, Event::SubmissionAbandoned]), Status::Approved);
        assert!(matches!(
            transition(Status::Synced, Event::UploadAbandoned),
            Err(InvalidTransition::NotApplicable { .. })
        ));
        assert!(matches!(
            transition(Status::Uploaded, Event::UploadAbandoned),
            Err(InvalidTransition::NotApplicable { .. })
        ));
    }

    #[test]
    fn replayed_events_are_recognised_as_done() {
        // A duplicate webhook after the receipt went up must not restart anything.
        assert!(matches!(
            transition(Status::Uploaded, Event::TransactionCompleted),
            Err(InvalidTransition::AlreadyDone { .. })
        ));
        // A second claim of the same upload loses.
        assert!(matches!(
            transition(Status::Uploading, Event::UploadStarted),
            Err(InvalidTransition::AlreadyDone { .. })
        ));
        // Skipping a step is refused, not silently accepted.
        assert!(matches!(
            transition(Status::Approved, Event::TransactionCompleted),
            Err(InvalidTransition::NotApplicable { expected: Status::Syncing, .. })
        ));
    }

    #[test]
    fn every_event_has_exactly_one_source() {
        let all = [
            Status::Approved,
            Status::Submitting,
            Status::Submitted,
            Status::Syncing,
            Status::Synced,
            Status::Uploading,
            Status::Uploaded,
            Status::RecordedWithoutAttachment,
            Status::Failed,
            Status::UploadFailed,
            Status::Unconfirmed,
        ];
        for event in [Event::SubmissionStarted, Event::TransactionCompleted, Event::UploadStarted] {
            let sources = all.iter().filter(|s| transition(**s, event.clone()).is_ok()).count();
            assert_eq!(sources, 1, "{event:?}");
        }
        for status in all.iter().filter(|s| s.is_final()) {
            for event in [
                Event::SubmissionStarted,
                Event::SyncStarted { sync_id: SyncId::random() },
                Event::TransactionCompleted,
                Event::UploadStarted,
                Event::SubmissionAbandoned,
            ] {
                assert!(transition(*status, event).is_err());
            }
        }
    }
}
