//! Receipt files in S3, under `receipts/{companyId}/{expenseId}/{sha256}`.

use aws_sdk_s3::primitives::ByteStream;

use crate::domain::{CompanyId, ExpenseId, Receipt, ReceiptRef};

pub struct ReceiptStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

#[derive(Debug, thiserror::Error)]
#[error("receipt storage failed: {0}")]
pub struct ReceiptError(String);

impl ReceiptStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    /// Builds the client from shared config and `RECEIPTS_BUCKET`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, String> {
        let bucket = crate::required_env("RECEIPTS_BUCKET")?;
        let s3_config =
            aws_sdk_s3::config::Builder::from(config).force_path_style(crate::aws::endpoint_overridden()).build();
        Ok(Self::new(aws_sdk_s3::Client::from_conf(s3_config), bucket))
    }

    /// Addressed by content too: two concurrent approvals of one expense id with different
    /// receipts write two objects, so the one that is recorded always points at its own bytes.
    pub fn key(company: CompanyId, expense: ExpenseId, sha256: &str) -> String {
        format!("receipts/{company}/{expense}/{sha256}")
    }

    /// Stores the receipt. Idempotent: a retry writes the same bytes to the same key.
    pub async fn put(
        &self,
        company: CompanyId,
        expense: ExpenseId,
        receipt: &Receipt,
    ) -> Result<ReceiptRef, ReceiptError> {
        let sha256 = receipt.sha256_hex();
        let key = Self::key(company, expense, &sha256);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(&receipt.content_type)
            .metadata("file-name", percent_encode(&receipt.file_name))
            .metadata("sha256", &sha256)
            .body(ByteStream::from(receipt.bytes.clone()))
            .send()
            .await
            .map_err(|e| ReceiptError(format!("put {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
        Ok(ReceiptRef {
            key,
            file_name: receipt.file_name.clone(),
            content_type: receipt.content_type.clone(),
            size: receipt.bytes.len() as u64,
            sha256,
        })
    }

    pub async fn get(&self, receipt: &ReceiptRef) -> Result<Vec<u8>, ReceiptError> {
        let object =
            self.client.get_object().bucket(&self.bucket).key(&receipt.key).send().await.map_err(|e| {
                ReceiptError(format!("get {}: {}", receipt.key, aws_sdk_s3::error::DisplayErrorContext(e)))
            })?;
        let bytes =
            object.body.collect().await.map_err(|e| ReceiptError(format!("read {}: {e}", receipt.key)))?.to_vec();
        Ok(bytes)
    }
}

/// S3 metadata must be ASCII: keep the file name readable and reversible.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b' '..=b'~' if b != b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
