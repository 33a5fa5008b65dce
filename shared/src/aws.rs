//! Shared AWS SDK configuration.
//!
//! `AWS_ENDPOINT_URL` (read by aws-config itself) points every SDK client at a local emulator
//! such as moto server; nothing else changes between local and AWS.

/// Loads region, credentials and endpoint from the environment, once per cold start.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Whether an emulator endpoint is configured (S3 then needs path-style addressing).
pub fn endpoint_overridden() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}
