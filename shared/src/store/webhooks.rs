//! Verified webhook deliveries, kept for a week: the first of each id is recorded, and its
//! insert on the stream has the sync-initiation function record the sync's outcome.

use super::*;
use crate::domain::ReceivedNotice;

impl Store {
    /// Records a delivery unless its id was recorded before (Codat redelivers for about 32
    /// hours); `false` for a redelivery.
    pub async fn record_notice(&self, notice: &ReceivedNotice) -> Result<bool, StoreError> {
        self.count(1);
        let expires = (notice.received_at + Duration::days(7)).timestamp();
        let mut record = item(notice, key(format!("WEBHOOK#{}", notice.webhook_id), "WEBHOOK".into()), "webhookNotice");
        record.insert("ttl".into(), AttributeValue::N(expires.to_string()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        made(result)
    }
}
