//! Expense items: created once, then moved by one conditional write per transition.

use super::*;

/// Tries of one insert transaction that other writes keep cancelling.
const INSERT_ATTEMPTS: u32 = 4;

impl Store {
    pub async fn get_expense(&self, company: CompanyId, expense: ExpenseId) -> Result<Option<Expense>, StoreError> {
        self.count(1);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(expense_key(company, expense)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item.map(from_item).transpose()
    }

    /// Reads many expenses (strongly consistent), in no particular order; missing ones are absent.
    pub async fn get_expenses(&self, company: CompanyId, ids: &[ExpenseId]) -> Result<Vec<Expense>, StoreError> {
        let keys = ids.iter().map(|id| expense_key(company, *id)).collect();
        self.batch_get(keys).await?.into_iter().map(from_item).collect()
    }

    /// Puts every expense, or none of them: one transaction, each put on condition that no
    /// expense has its id. When some exist already (a replay or a concurrent approval), nothing
    /// is written and `existing` names them, so the caller can check them before trying again
    /// without them. A failure can therefore never leave part of an approval stored.
    pub async fn insert_expenses(&self, expenses: &[Expense]) -> Result<Inserted, StoreError> {
        if expenses.len() > MAX_TRANSACT_ITEMS {
            return Err(StoreError::Dynamo(format!(
                "{} expenses cannot be inserted in one transaction (at most {MAX_TRANSACT_ITEMS})",
                expenses.len()
            )));
        }
        let mut backoff = std::time::Duration::from_millis(50);
        for _ in 0..INSERT_ATTEMPTS {
            let items = expenses
                .iter()
                .map(|expense| {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(expense_item(expense)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| StoreError::Dynamo(e.to_string()))?;
                    Ok(TransactWriteItem::builder().put(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let reasons = match self.try_transact(items).await? {
                Ok(()) => {
                    return Ok(Inserted {
                        created: expenses.iter().map(|e| e.expense_id).collect(),
                        existing: Vec::new(),
                    })
                }
                Err(reasons) => reasons,
            };
            let existing: Vec<ExpenseId> = reasons
                .iter()
                .zip(expenses)
                .filter(|(reason, _)| *reason == CONDITION_FAILED)
                .map(|(_, expense)| expense.expense_id)
                .collect();
            if !existing.is_empty() {
                return Ok(Inserted { created: Vec::new(), existing });
            }
            // Cancelled for another reason (a concurrent transaction on the same items): again.
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(StoreError::Dynamo(format!("inserting {} expenses kept conflicting with other writes", expenses.len())))
    }

    /// Applies one transition as one conditional write (`status` must still be `from`).
    pub async fn apply(&self, expense: &Expense, transition: &Transition) -> Result<(), StoreError> {
        self.count(1);
        let update = expense_update(expense.company_id, expense.expense_id, transition, Utc::now());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.expression)
            .condition_expression(update.condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => {
                Err(StoreError::Conflict(format!("expense {} is no longer {}", expense.expense_id, transition.from)))
            }
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Applies the same event to several expenses, all or none (at most 100).
    pub async fn apply_all(&self, moves: &[(&Expense, Transition)]) -> Result<(), StoreError> {
        self.transact(self.updates(moves)).await
    }

    /// Applies each transition (at most 100, of different expenses) in one transaction, on
    /// the same conditions as [`Store::apply`]. All are made, or none: `NoneFor` then names the
    /// positions whose expense is no longer in its `from` status, `Contended` says a concurrent
    /// write to one of them cancelled the transaction without a condition failing.
    pub async fn apply_each(&self, moves: &[(&Expense, &Transition)]) -> Result<Moved, StoreError> {
        Ok(match self.try_transact(self.updates(moves)).await? {
            Ok(()) => Moved::All,
            Err(reasons) => {
                let stale: Vec<usize> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, reason)| *reason == CONDITION_FAILED)
                    .map(|(position, _)| position)
                    .collect();
                if stale.is_empty() {
                    Moved::Contended
                } else {
                    Moved::NoneFor(stale)
                }
            }
        })
    }

    /// The conditional updates that make `moves`, as transaction items.
    fn updates<T: std::borrow::Borrow<Transition>>(&self, moves: &[(&Expense, T)]) -> Vec<TransactWriteItem> {
        let now = Utc::now();
        moves
            .iter()
            .map(|(expense, transition)| {
                expense_update(expense.company_id, expense.expense_id, transition.borrow(), now)
                    .into_transact(&self.table)
            })
            .collect()
    }

    /// Expenses still `approved` since before `before` (Codat was unavailable at intake).
    pub async fn stale_approved_expenses(&self, before: DateTime<Utc>) -> Result<Vec<Expense>, StoreError> {
        let items = self.sweep(SWEEP_APPROVED_EXPENSE, Some(sweep_time(before))).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Expenses claimed (`submitting`/`uploading`) since before `before`.
    pub async fn stale_claimed_expenses(&self, before: DateTime<Utc>) -> Result<Vec<Expense>, StoreError> {
        let items = self.sweep(SWEEP_CLAIMED_EXPENSE, Some(sweep_time(before))).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Expenses `synced` since before `before`: their upload never ran or never finished.
    pub async fn stale_synced_expenses(&self, before: DateTime<Utc>) -> Result<Vec<Expense>, StoreError> {
        let items = self.sweep(SWEEP_SYNCED_EXPENSE, Some(sweep_time(before))).await?;
        items.into_iter().map(from_item).collect()
    }

    /// Writes a `synced` expense again, unchanged but for `updatedAt`, so its stream delivers a
    /// new `synced -> synced` record and attachment-upload runs for it once more. Conditional on
    /// the expense being as read: `false` when it moved on meanwhile.
    pub async fn requeue_upload(&self, expense: &Expense) -> Result<bool, StoreError> {
        self.count(1);
        let now = Utc::now();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(expense_key(expense.company_id, expense.expense_id)))
            .update_expression("SET updatedAt = :now, sweepAt = :sweepAt ADD uploadRequeues :one")
            .condition_expression("#status = :synced AND updatedAt = :seen")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", to_attribute(&now))
            .expression_attribute_values(":seen", to_attribute(&expense.updated_at))
            .expression_attribute_values(":synced", to_attribute(&Status::Synced))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":sweepAt", s(sweep_at(now, expense.company_id)))
            .send()
            .await;
        made(result)
    }
}

fn expense_item(expense: &Expense) -> HashMap<String, AttributeValue> {
    let mut item = item(expense, expense_key(expense.company_id, expense.expense_id), "expense");
    if let Some(kind) = sweep_kind(expense.status) {
        item.extend(sweep_entry(kind, expense.company_id, expense.updated_at));
    }
    item
}

/// Which sweep an expense in `status` waits for, if any.
fn sweep_kind(status: Status) -> Option<&'static str> {
    match status {
        Status::Approved => Some(SWEEP_APPROVED_EXPENSE),
        Status::Submitting | Status::Uploading => Some(SWEEP_CLAIMED_EXPENSE),
        Status::Synced => Some(SWEEP_SYNCED_EXPENSE),
        _ => None,
    }
}

/// The conditional update that makes one transition: `status` must still be `from`.
pub(super) struct ExpenseUpdate {
    key: HashMap<String, AttributeValue>,
    expression: String,
    condition: &'static str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl ExpenseUpdate {
    pub(super) fn into_transact(self, table: &str) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(self.expression)
            .condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .expect("update is complete");
        TransactWriteItem::builder().update(update).build()
    }
}

pub(super) fn expense_update(
    company: CompanyId,
    expense: ExpenseId,
    transition: &Transition,
    now: DateTime<Utc>,
) -> ExpenseUpdate {
    let mut set = vec!["#status = :to", "updatedAt = :now"];
    let mut remove: Vec<&str> = Vec::new();
    let mut values = HashMap::from([
        (":to".to_string(), to_attribute(&transition.to)),
        (":from".to_string(), to_attribute(&transition.from)),
        (":now".to_string(), to_attribute(&now)),
    ]);
    match &transition.event {
        Event::DatasetCreated { dataset_id } => {
            set.push("datasetId = :dataset");
            values.insert(":dataset".into(), to_attribute(dataset_id));
        }
        Event::SyncStarted { sync_id } | Event::SyncCreated { sync_id } => {
            set.push("syncId = :sync");
            values.insert(":sync".into(), to_attribute(sync_id));
        }
        Event::ReceiptUploaded { attachment_id } => {
            set.push("attachmentId = :attachment");
            values.insert(":attachment".into(), s(attachment_id.clone()));
        }
        Event::AttachmentNotTaken { reason } => {
            set.push("note = :note");
            values.insert(":note".into(), s(reason.clone()));
        }
        Event::SubmissionRejected(failure)
        | Event::SubmissionBlocked(failure)
        | Event::UploadBlocked(failure)
        | Event::SubmissionUnconfirmed(failure)
        | Event::SyncRejected(failure)
        | Event::TransactionFailed(failure)
        | Event::UploadRejected(failure)
        | Event::TransactionUnreported(failure)
        | Event::UploadUnconfirmed(failure) => {
            set.push("failure = :failure");
            values.insert(":failure".into(), to_attribute(failure));
        }
        _ => {}
    }
    if transition.event.clears_failure() {
        remove.push("failure");
    }
    match sweep_kind(transition.to) {
        Some(kind) => {
            set.push("sweepShard = :sweepShard, sweepAt = :sweepAt");
            values.insert(":sweepShard".into(), s(sweep_shard(kind, company)));
            values.insert(":sweepAt".into(), s(sweep_at(now, company)));
            // An expense listed before the sharded index existed leaves the legacy one.
            remove.push("sweepPk, sweepSk");
        }
        None => remove.push(LEAVE_SWEEP),
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    ExpenseUpdate {
        key: expense_key(company, expense),
        expression,
        condition: "#status = :from",
        names: HashMap::from([("#status".to_string(), "status".to_string())]),
        values,
    }
}
