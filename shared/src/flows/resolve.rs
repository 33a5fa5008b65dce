//! Did a create whose answer was lost take effect? On the current API a create makes a sync,
//! so Codat's own sync lists tell: the latest sync first, then every sync since the create was
//! sent, each checked for our transaction ids.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::submit::record_created_sync;
use crate::codat::{CodatClient, CodatError, CompanySyncStatus};
use crate::domain::{CompanyId, Expense, ExpenseId, SyncId};
use crate::store::StoreError;

/// Clock skew allowed between us and Codat when picking syncs made after our create.
const SKEW: Duration = Duration::minutes(5);

/// The sync holding any of `wanted`, with those of `wanted` it holds; `None` when no sync
/// since `sent_at` holds any of them.
pub async fn find_created_sync(
    codat: &CodatClient,
    company: CompanyId,
    wanted: &[ExpenseId],
    sent_at: DateTime<Utc>,
) -> Result<Option<(SyncId, Vec<ExpenseId>)>, CodatError> {
    let mut checked = HashSet::new();
    // The latest sync is the likeliest, and one cheap call.
    let latest: Vec<CompanySyncStatus> = codat.expenses().latest_sync_status(company).await?.into_iter().collect();
    if let Some(found) = first_holding(codat, company, wanted, sent_at, &latest, &mut checked).await? {
        return Ok(Some(found));
    }
    let all = codat.expenses().list_sync_statuses(company).await?;
    first_holding(codat, company, wanted, sent_at, &all, &mut checked).await
}

/// Lists the transactions of each sync in `statuses` made since `sent_at` (all of them: a
/// lookup that skipped one could not tell "never taken" from "not looked at").
async fn first_holding(
    codat: &CodatClient,
    company: CompanyId,
    wanted: &[ExpenseId],
    sent_at: DateTime<Utc>,
    statuses: &[CompanySyncStatus],
    checked: &mut HashSet<SyncId>,
) -> Result<Option<(SyncId, Vec<ExpenseId>)>, CodatError> {
    let recent = statuses.iter().filter(|s| made_since(s, sent_at)).filter_map(|s| s.sync_id.as_deref()?.parse().ok());
    for sync_id in recent {
        if !checked.insert(sync_id) {
            continue;
        }
        let held: Vec<ExpenseId> = codat
            .sync_transactions(company, sync_id)
            .await?
            .iter()
            .filter_map(|t| t.expense_id())
            .filter(|id| wanted.contains(id))
            .collect();
        if !held.is_empty() {
            return Ok(Some((sync_id, held)));
        }
    }
    Ok(None)
}

/// What asking Codat about claimed expenses whose create answer was lost found out.
#[derive(Debug)]
pub struct Resolution {
    /// Found in a sync: recorded and moved to `syncing`.
    pub resolved: usize,
    /// Still `submitting`: no sync Codat lists holds them (yet), or Codat could not be asked.
    pub unresolved: Vec<Expense>,
    /// Why Codat's sync lists could not be read, if they could not.
    pub lookup_failed: Option<String>,
}

/// Looks for the syncs lost creates made (each create makes one, so it looks again for the
/// rest until none is found) and records those it finds.
pub async fn resolve_lost_creates(
    store: &crate::store::Store,
    codat: &CodatClient,
    company: CompanyId,
    claimed: Vec<Expense>,
) -> Result<Resolution, StoreError> {
    let mut remaining = claimed;
    let mut resolved = 0;
    while !remaining.is_empty() {
        let since = remaining.iter().map(|e| e.updated_at).min().expect("not empty");
        let ids: Vec<_> = remaining.iter().map(|e| e.expense_id).collect();
        match find_created_sync(codat, company, &ids, since).await {
            Ok(Some((sync_id, found))) => {
                let (taken, rest): (Vec<Expense>, Vec<Expense>) =
                    remaining.into_iter().partition(|e| found.contains(&e.expense_id));
                tracing::info!(%sync_id, expenses = taken.len(), "Codat took the transactions of a lost answer");
                record_created_sync(store, company, sync_id, &taken).await?;
                resolved += taken.len();
                remaining = rest;
            }
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask Codat about a lost answer yet");
                return Ok(Resolution { resolved, unresolved: remaining, lookup_failed: Some(err.to_string()) });
            }
        }
    }
    Ok(Resolution { resolved, unresolved: remaining, lookup_failed: None })
}

/// Whether the sync may have been made after `sent_at` (no time given: it may).
fn made_since(status: &CompanySyncStatus, sent_at: DateTime<Utc>) -> bool {
    let Some(when) = status.sync_utc.as_deref() else { return true };
    let parsed = DateTime::parse_from_rfc3339(when)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc()));
    parsed.map_or(true, |t| t >= sent_at - SKEW)
}
