//! The schedule's safety net, so that a lost event delays an expense but never strands it:
//! * submit expenses still `approved` (Codat was unavailable when they were approved);
//! * resolve creates whose answer was lost or whose invocation died (current API): Codat's sync
//!   lists tell whether it took them;
//! * mark other claims whose invocation died (a timeout) `unconfirmed`: whether Codat acted is
//!   unknown;
//! * requeue uploads of expenses left `synced` (their stream record was lost, or exhausted its
//!   retries or its age limit): nothing else would ever upload them;
//! * initiate syncs for v1 datasets nobody picked up;
//! * poll syncs whose webhook never came (`GET .../syncs/{syncId}/status`, then the transactions),
//!   and close those Codat never finishes (or cannot be asked about) by an absolute deadline.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};

use std::collections::BTreeMap;

use super::deadline::{Deadline, Phases};
use super::initiate::{initiate_sync, Initiated};
use super::outcome::{close_sync, record_sync_outcome, Closing, Recorded};
use super::resolve::resolve_lost_creates;
use super::submit::submit_approved;
use super::{apply_once, FlowError};
use crate::codat::CodatClient;
use crate::domain::{CodatApi, CompanyId, Event, Expense, Failure, Stage, Status};
use crate::store::Store;

/// A webhook normally arrives within seconds; only syncs older than this are polled.
pub const POLL_AFTER: Duration = Duration::minutes(2);
/// Longer than any function's timeout (Lambda's maximum is 15 minutes): a claim this old
/// belongs to an invocation that is gone. The template sets `SWEEP_CLAIM_TIMEOUT_SECONDS` just
/// above the longest timeout of the functions that claim (attachment-upload's 300 s).
pub const CLAIM_TIMEOUT: Duration = Duration::minutes(16);
/// How long after a sync started Codat may still report its transactions; after that, the
/// ones it never reported become `unconfirmed` and the company's lock is released.
pub const REPORT_GRACE: Duration = Duration::hours(1);
/// A sync Codat has not said is finished this long after it started (its status keeps failing,
/// or it never ends) is closed anyway: well inside the v1 lock's 24-hour lease.
pub const SYNC_DEADLINE: Duration = Duration::hours(6);

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub expenses_resubmitted: usize,
    pub claims_expired: usize,
    /// Lost creates Codat's sync lists showed it took.
    pub creates_resolved: usize,
    pub uploads_requeued: usize,
    pub syncs_started: usize,
    pub syncs_polled: usize,
    pub syncs_finished: usize,
    /// Entries moved from the sweep index of earlier releases (see `Store::migrate_legacy_sweep`).
    #[serde(skip_serializing_if = "is_zero")]
    pub legacy_entries_moved: usize,
    /// Phases that ran out of their time box before their work was done.
    pub cut_short: Vec<String>,
    pub errors: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How long the sweep waits before acting on each kind of silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Before polling a sync's status (its webhook is late), or resubmitting an approved expense.
    pub poll_after: Duration,
    /// Before a claim counts as abandoned.
    pub claim_timeout: Duration,
    /// Before unreported transactions of a finished sync become `unconfirmed`.
    pub report_grace: Duration,
    /// Before a sync that never finished (or could not be asked) is closed.
    pub sync_deadline: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            poll_after: POLL_AFTER,
            claim_timeout: CLAIM_TIMEOUT,
            report_grace: REPORT_GRACE,
            sync_deadline: SYNC_DEADLINE,
        }
    }
}

/// The sweep's phases; each is time-boxed (see [`Phases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    ResubmitApproved,
    ResolveLostCreates,
    ExpireClaims,
    RequeueUploads,
    InitiateSyncs,
    PollSyncs,
}

const PHASES: [Phase; 6] = [
    Phase::ResubmitApproved,
    Phase::ResolveLostCreates,
    Phase::ExpireClaims,
    Phase::RequeueUploads,
    Phase::InitiateSyncs,
    Phase::PollSyncs,
];

/// What one unit of work that only writes to DynamoDB may take.
const STORE_WORK: StdDuration = StdDuration::from_secs(1);

/// One pass of the safety net, within `deadline` (the invocation's end): no unit of work is
/// started that could not finish by then, and each phase has its share of the time, so the
/// later ones are never starved. Each pass starts at a phase picked at random: a pass that
/// dies part-way (a crash, a timeout) does not leave the same phases undone every time. What
/// is left is picked up by the next pass.
pub async fn sweep(
    store: &Store,
    codat: &CodatClient,
    patience: Patience,
    deadline: Deadline,
) -> Result<SweepReport, FlowError> {
    let mut pass = Pass {
        store,
        codat,
        patience,
        deadline,
        now: Utc::now(),
        phases: Phases::new(deadline, PHASES.len() as u32),
        report: SweepReport::default(),
    };
    // Before the phases, so what an upgrade left in the old index is swept in this same pass.
    match store.migrate_legacy_sweep().await {
        Ok(moved) => pass.report.legacy_entries_moved = moved,
        Err(err) => pass.report.errors.push(format!("moving legacy sweep entries: {err}")),
    }
    let first = usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % PHASES.len();
    for phase in PHASES.iter().cycle().skip(first).take(PHASES.len()) {
        pass.phases.next();
        match phase {
            Phase::ResubmitApproved => pass.resubmit_approved().await?,
            Phase::ResolveLostCreates => pass.resolve_lost_creates().await?,
            Phase::ExpireClaims => pass.expire_claims().await?,
            Phase::RequeueUploads => pass.requeue_uploads().await?,
            Phase::InitiateSyncs => pass.initiate_syncs().await?,
            Phase::PollSyncs => pass.poll_syncs().await?,
        }
    }
    Ok(pass.report)
}

struct Pass<'a> {
    store: &'a Store,
    codat: &'a CodatClient,
    patience: Patience,
    deadline: Deadline,
    now: chrono::DateTime<Utc>,
    phases: Phases,
    report: SweepReport,
}

impl Pass<'_> {
    /// Whether the current phase may start a unit of work that may take `needed`; records the
    /// phase as cut short when not.
    fn may_start(&mut self, phase: Phase, needed: StdDuration) -> bool {
        if self.phases.may_start(needed) {
            return true;
        }
        tracing::warn!(?phase, "out of time for this phase; the next sweep goes on");
        self.report.cut_short.push(format!("{phase:?}"));
        false
    }

    /// A unit that calls Codat: its calls' retry budget (a few calls fit in it in practice).
    fn codat_work(&self) -> StdDuration {
        self.codat.retry_budget()
    }

    async fn resubmit_approved(&mut self) -> Result<(), FlowError> {
        let mut approved: BTreeMap<CompanyId, Vec<Expense>> = BTreeMap::new();
        for expense in self.store.stale_approved_expenses(self.now - self.patience.poll_after).await? {
            approved.entry(expense.company_id).or_default().push(expense);
        }
        for (company, expenses) in approved {
            if !self.may_start(Phase::ResubmitApproved, self.codat_work()) {
                break;
            }
            match submit_approved(self.store, self.codat, company, &expenses, self.deadline.instant()).await {
                Ok(_) => self.report.expenses_resubmitted += expenses.len(),
                Err(err) => self.report.errors.push(format!("company {company}: {err}")),
            }
        }
        Ok(())
    }

    /// Claims (`submitting`, `uploading`) old enough to be looked at.
    async fn stale_claims(&self) -> Result<Vec<Expense>, FlowError> {
        let Patience { poll_after, claim_timeout, .. } = self.patience;
        Ok(self.store.stale_claimed_expenses(self.now - poll_after.min(claim_timeout)).await?)
    }

    /// Current-API creates whose answer was lost: ask Codat's sync lists, company by company.
    async fn resolve_lost_creates(&mut self) -> Result<(), FlowError> {
        let Patience { claim_timeout, sync_deadline, .. } = self.patience;
        let mut lost: BTreeMap<CompanyId, Vec<Expense>> = BTreeMap::new();
        for expense in self.stale_claims().await? {
            if expense.status == Status::Submitting && expense.api == CodatApi::Expenses {
                lost.entry(expense.company_id).or_default().push(expense);
            }
        }
        for (company, claimed) in lost {
            if !self.may_start(Phase::ResolveLostCreates, self.codat_work()) {
                break;
            }
            let resolution = resolve_lost_creates(self.store, self.codat, company, claimed).await?;
            self.report.creates_resolved += resolution.resolved;
            // Codat's lists unreadable for now is no verdict: keep asking, on every sweep,
            // until the sync deadline; only then does a person have to check.
            let give_up_before = match &resolution.lookup_failed {
                None => self.now - claim_timeout,
                Some(_) => self.now - sync_deadline,
            };
            let settle = match &resolution.lookup_failed {
                // Codat answered, and no sync since the claim holds them: the create never took
                // effect, so once no invocation can still be making it, they are submitted again.
                None => Event::SubmissionAbandoned,
                Some(err) => {
                    self.report.errors.push(format!("company {company}: {err}"));
                    Event::SubmissionUnconfirmed(Failure::new(
                        Stage::Submission,
                        format!(
                            "Codat's answer to the create was lost and its sync lists could not be read for {} \
                             hours ({err}); check in Codat whether the transaction arrived before retrying",
                            sync_deadline.num_hours()
                        ),
                    ))
                }
            };
            for mut expense in resolution.unresolved.into_iter().filter(|e| e.updated_at < give_up_before) {
                tracing::warn!(expense_id = %expense.expense_id, event = ?settle, "lost create settled");
                if apply_once(self.store, &mut expense, settle.clone()).await? {
                    self.report.claims_expired += 1;
                }
            }
        }
        Ok(())
    }

    /// Other claims older than any invocation: whether Codat acted is unknown.
    async fn expire_claims(&mut self) -> Result<(), FlowError> {
        let claim_timeout = self.patience.claim_timeout;
        let abandoned = self.stale_claims().await?.into_iter().filter(|e| {
            !(e.status == Status::Submitting && e.api == CodatApi::Expenses) && e.updated_at < self.now - claim_timeout
        });
        for mut expense in abandoned.collect::<Vec<_>>() {
            if !self.may_start(Phase::ExpireClaims, STORE_WORK) {
                break;
            }
            let (stage, event): (Stage, fn(Failure) -> Event) = match expense.status {
                Status::Submitting => (Stage::Submission, Event::SubmissionUnconfirmed),
                Status::Uploading => (Stage::Upload, Event::UploadUnconfirmed),
                _ => continue,
            };
            let failure = Failure::new(
                stage,
                "the invocation posting it to Codat stopped (timeout or crash) before recording Codat's answer; \
                 check in Codat whether it arrived before retrying",
            );
            tracing::warn!(expense_id = %expense.expense_id, status = %expense.status, "abandoned claim");
            if apply_once(self.store, &mut expense, event(failure)).await? {
                self.report.claims_expired += 1;
            }
        }
        Ok(())
    }

    async fn requeue_uploads(&mut self) -> Result<(), FlowError> {
        for expense in self.store.stale_synced_expenses(self.now - self.patience.poll_after).await? {
            if !self.may_start(Phase::RequeueUploads, STORE_WORK) {
                break;
            }
            if self.store.requeue_upload(&expense).await? {
                tracing::info!(expense_id = %expense.expense_id, "upload requeued");
                self.report.uploads_requeued += 1;
            }
        }
        Ok(())
    }

    async fn initiate_syncs(&mut self) -> Result<(), FlowError> {
        for company in self.store.companies_with_pending_datasets().await? {
            if !self.may_start(Phase::InitiateSyncs, self.codat_work()) {
                break;
            }
            match initiate_sync(self.store, self.codat, company).await {
                Ok(Initiated::Started { .. }) => self.report.syncs_started += 1,
                Ok(_) => {}
                Err(err) => self.report.errors.push(format!("company {company}: {err}")),
            }
        }
        Ok(())
    }

    /// Syncs whose webhook is late: poll, record, and close those Codat never finishes.
    async fn poll_syncs(&mut self) -> Result<(), FlowError> {
        let Patience { poll_after, report_grace, sync_deadline, .. } = self.patience;
        let (store, codat, now) = (self.store, self.codat, self.now);
        for sync in store.running_syncs(Utc::now() - poll_after).await? {
            if !self.may_start(Phase::PollSyncs, self.codat_work()) {
                break;
            }
            let (company, sync_id) = (sync.company_id, sync.sync_id);
            self.report.syncs_polled += 1;
            let overdue = sync.started_at < now - sync_deadline;
            let status = match codat.sync_status(company, sync_id).await {
                Ok(status) => Ok(status),
                Err(err) => {
                    self.report.errors.push(format!("sync {sync_id}: {err}"));
                    Err(err.to_string())
                }
            };
            let finished = status.as_ref().is_ok_and(|s| s.is_finished());
            let outcome = if finished && sync.started_at >= now - report_grace {
                record_sync_outcome(store, codat, company, sync_id).await
            } else if finished && !overdue {
                let sync_error = status.as_ref().ok().and_then(|s| s.failure_text());
                close_sync(store, codat, company, sync_id, Closing::Unreported { sync_error }).await
            } else if overdue {
                let last = match &status {
                    Ok(s) => format!("its status is still {}", s.sync_status.as_deref().unwrap_or("unknown")),
                    Err(err) => format!("its status could not be read: {err}"),
                };
                let reason =
                    format!("Codat did not finish this sync within {} hours ({last})", sync_deadline.num_hours());
                tracing::warn!(%sync_id, %reason, "closing an overdue sync");
                close_sync(store, codat, company, sync_id, Closing::Deadline { reason }).await
            } else {
                continue;
            };
            match outcome {
                Ok(Recorded::Finished { .. }) => self.report.syncs_finished += 1,
                Ok(_) => {}
                Err(err) => self.report.errors.push(format!("sync {sync_id}: {err}")),
            }
        }
        Ok(())
    }
}
