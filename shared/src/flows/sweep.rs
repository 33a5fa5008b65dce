//! The schedule's safety net: initiate syncs for datasets nobody picked up, and poll syncs
//! whose webhook never came (`GET .../syncs/{syncId}/status`, then the transactions).

use chrono::{Duration, Utc};

use super::initiate::{initiate_sync, Initiated};
use super::outcome::{record_sync_outcome, Recorded};
use super::FlowError;
use crate::codat::CodatClient;
use crate::store::Store;

/// A webhook normally arrives within seconds; only syncs older than this are polled.
pub const POLL_AFTER: Duration = Duration::minutes(2);

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub syncs_started: usize,
    pub syncs_polled: usize,
    pub syncs_finished: usize,
    pub errors: Vec<String>,
}

pub async fn sweep(store: &Store, codat: &CodatClient, poll_after: Duration) -> Result<SweepReport, FlowError> {
    let mut report = SweepReport::default();
    for company in store.companies_with_pending_datasets().await? {
        match initiate_sync(store, codat, company).await {
            Ok(Initiated::Started { .. }) => report.syncs_started += 1,
            Ok(_) => {}
            Err(err) => report.errors.push(format!("company {company}: {err}")),
        }
    }
    for sync in store.running_syncs(Utc::now() - poll_after).await? {
        let (company, sync_id) = (sync.company_id, sync.sync_id);
        report.syncs_polled += 1;
        let finished = match codat.sync_status(company, sync_id).await {
            Ok(status) => status.is_finished(),
            Err(err) => {
                report.errors.push(format!("sync {sync_id}: {err}"));
                continue;
            }
        };
        if !finished {
            continue;
        }
        match record_sync_outcome(store, codat, company, sync_id).await {
            Ok(Recorded::Finished { .. }) => report.syncs_finished += 1,
            Ok(_) => {}
            Err(err) => report.errors.push(format!("sync {sync_id}: {err}")),
        }
    }
    Ok(report)
}
