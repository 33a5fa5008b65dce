//! The steps of the sync process (`sync-process.md`), each over the Codat client and the store.
//!
//! | step                     | module      | run by                               |
//! |--------------------------|-------------|--------------------------------------|
//! | approve & create         | [`intake`], [`submit`] | approval-intake (and the sweep) |
//! | lost create answer       | [`resolve`] | approval-intake, the sweep (current API) |
//! | initiate sync (v1)       | [`initiate`]| sync-initiation (stream + schedule)  |
//! | check transactions       | [`outcome`] | webhook-receipt, sync-initiation's sweep |
//! | upload receipt           | [`upload`]  | attachment-upload (stream)           |

pub mod deadline;
pub mod initiate;
#[cfg(feature = "receipts")]
pub mod intake;
pub mod outcome;
pub mod resolve;
pub mod submit;
pub mod sweep;
#[cfg(feature = "receipts")]
pub mod upload;

use crate::codat::CodatError;
use crate::domain::{Event, Expense, Failure, InvalidTransition, Stage, Transition};
use crate::store::{Moved, Store, StoreError};

/// Why a step could not finish. `Retry` means: fail the invocation (or the stream record) so
/// Lambda delivers it again; nothing irreversible happened.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("try again later: {0}")]
    Retry(String),
}

/// A Codat refusal or loss in words for the expense's record.
pub(crate) fn failure_from(stage: Stage, err: &CodatError) -> Failure {
    match err {
        CodatError::Rejected { status, error } => Failure {
            stage,
            reason: error.summary(),
            codat_status: Some(status.to_string()),
            correlation_id: error.correlation_id.clone(),
        },
        CodatError::Unavailable { detail, .. } => Failure::new(
            stage,
            format!("Codat's answer was lost ({detail}); it may or may not have acted, so it was not repeated. Check in Codat before retrying."),
        ),
    }
}

/// Applies `event` to the expense as one conditional write. When another invocation moved the
/// expense first, re-reads it and judges the event against what it is now: a replay or an
/// event already overtaken is not an error. Returns whether this call made the move; either
/// way `expense` is left as stored.
pub(crate) async fn apply_once(store: &Store, expense: &mut Expense, event: Event) -> Result<bool, StoreError> {
    for _ in 0..3 {
        let transition = match expense.transition(event.clone()) {
            Ok(t) => t,
            Err(InvalidTransition::AlreadyDone { .. }) => return Ok(false),
            Err(err @ InvalidTransition::NotApplicable { .. }) => {
                tracing::warn!(expense_id = %expense.expense_id, error = %err, "event does not apply");
                return Ok(false);
            }
        };
        match store.apply(expense, &transition).await {
            Ok(()) => {
                expense.apply(&transition, chrono::Utc::now());
                return Ok(true);
            }
            Err(StoreError::Conflict(reason)) => {
                tracing::info!(expense_id = %expense.expense_id, %reason, "moved by another invocation; re-reading");
                match store.get_expense(expense.company_id, expense.expense_id).await? {
                    Some(fresh) => *expense = fresh,
                    None => return Ok(false),
                }
            }
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Conflict(format!("expense {} keeps changing under {event:?}", expense.expense_id)))
}

/// DynamoDB's limit on items in one transaction.
const MOVES_PER_TRANSACTION: usize = 100;
/// Transactions cancelled by concurrent writes (no condition failed) before the moves left are
/// made one by one.
const CONTENDED_TRIES: u32 = 3;

/// Applies each expense's event as [`apply_once`] would, but many in one transaction (per 100):
/// one request instead of one per expense. An expense another invocation moved meanwhile is
/// taken out, re-read and judged alone; the others go in together. Each expense is left as
/// stored; returns how many moves this call made.
pub(crate) async fn apply_many(store: &Store, moves: &mut [(Expense, Event)]) -> Result<usize, StoreError> {
    let mut made = 0;
    for chunk in moves.chunks_mut(MOVES_PER_TRANSACTION) {
        made += apply_chunk(store, chunk).await?;
    }
    Ok(made)
}

async fn apply_chunk(store: &Store, chunk: &mut [(Expense, Event)]) -> Result<usize, StoreError> {
    let mut made = 0;
    let mut alone = Vec::new();
    // The moves that apply to the expense as read; the others are judged alone (no write).
    let mut together: Vec<usize> = Vec::new();
    for (position, (expense, event)) in chunk.iter().enumerate() {
        match expense.transition(event.clone()) {
            Ok(_) => together.push(position),
            Err(_) => alone.push(position),
        }
    }
    let mut contended = 0;
    while together.len() > 1 {
        let transitions: Vec<Transition> = together
            .iter()
            .map(|&p| chunk[p].0.transition(chunk[p].1.clone()).expect("checked above, nothing changed since"))
            .collect();
        let moved = {
            let pairs: Vec<(&Expense, &Transition)> =
                together.iter().zip(&transitions).map(|(&p, t)| (&chunk[p].0, t)).collect();
            store.apply_each(&pairs).await?
        };
        match moved {
            Moved::All => {
                let now = chrono::Utc::now();
                for (&p, transition) in together.iter().zip(&transitions) {
                    chunk[p].0.apply(transition, now);
                }
                made += together.len();
                together.clear();
            }
            Moved::NoneFor(stale) => {
                for index in stale.into_iter().rev() {
                    alone.push(together.remove(index));
                }
            }
            Moved::Contended if contended < CONTENDED_TRIES => {
                contended += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25 << contended)).await;
            }
            Moved::Contended => alone.append(&mut together),
        }
    }
    alone.append(&mut together);
    for position in alone {
        let (expense, event) = &mut chunk[position];
        if apply_once(store, expense, event.clone()).await? {
            made += 1;
        }
    }
    Ok(made)
}
