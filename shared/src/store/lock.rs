//! The per-company sync lock (v1): one sync initiated or running per company at a time.

use super::*;

impl Store {
    /// Takes the company's sync lock for an initiation, unless it is held and not expired.
    pub async fn acquire_lock(&self, company: CompanyId, token: Uuid, lease: Duration) -> Result<bool, StoreError> {
        Ok(self.take_lock(company, token, lease).await?.is_some())
    }

    /// Like [`Store::acquire_lock`]; `Some(previous)` when it was taken, `previous` being the
    /// expired lock it replaced, if any (its holder died or lost Codat's answer).
    pub async fn take_lock(
        &self,
        company: CompanyId,
        token: Uuid,
        lease: Duration,
    ) -> Result<Option<Option<SyncLock>>, StoreError> {
        let now = Utc::now();
        let lock = SyncLock {
            company_id: company,
            holder: LockHolder::Initiation(token),
            acquired_at: now,
            expires_at: now + lease,
        };
        self.count(1);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(&lock, lock_key(company), "lock")))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes.filter(|old| !old.is_empty()) {
                Some(old) => Ok(Some(Some(from_item(old)?))),
                None => Ok(Some(None)),
            },
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Lets the lock `holder` holds expire at `at` (sooner than its lease).
    pub async fn shorten_lock(
        &self,
        company: CompanyId,
        holder: LockHolder,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.count(1);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lock_key(company)))
            .update_expression("SET expiresAt = :at")
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", to_attribute(&holder))
            .expression_attribute_values(":at", AttributeValue::N(at.timestamp().to_string()))
            .send()
            .await;
        made(result)
    }

    pub async fn get_lock(&self, company: CompanyId) -> Result<Option<SyncLock>, StoreError> {
        self.get(lock_key(company)).await
    }

    /// Releases the lock if `holder` still holds it.
    pub async fn release_lock(&self, company: CompanyId, holder: LockHolder) -> Result<bool, StoreError> {
        self.count(1);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(lock_key(company)))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", to_attribute(&holder))
            .send()
            .await;
        made(result)
    }

    pub(super) fn release_lock_item(&self, company: CompanyId, holder: LockHolder) -> TransactWriteItem {
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(lock_key(company)))
                    .condition_expression("holder = :holder")
                    .expression_attribute_values(":holder", to_attribute(&holder))
                    .build()
                    .expect("delete is complete"),
            )
            .build()
    }
}
