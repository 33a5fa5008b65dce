//! Webhook deliveries already processed, remembered for a week.

use super::*;

impl Store {
    pub async fn webhook_seen(&self, webhook_id: &str) -> Result<bool, StoreError> {
        self.count(1);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("WEBHOOK#{webhook_id}"), "WEBHOOK".into())))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.item.is_some())
    }

    /// Remembers a processed delivery for a week (Codat retries for up to about 32 hours).
    pub async fn remember_webhook(&self, webhook_id: &str, sync: SyncId) -> Result<(), StoreError> {
        self.count(1);
        let expires = (Utc::now() + Duration::days(7)).timestamp();
        let mut record = key(format!("WEBHOOK#{webhook_id}"), "WEBHOOK".into());
        record.insert("kind".into(), s("webhook"));
        record.insert("syncId".into(), s(sync.to_string()));
        record.insert("ttl".into(), AttributeValue::N(expires.to_string()));
        self.client.put_item().table_name(&self.table).set_item(Some(record)).send().await.map_err(dynamo)?;
        Ok(())
    }
}
