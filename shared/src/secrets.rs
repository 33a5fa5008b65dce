//! Codat credentials: read once per cold start, never logged.
//!
//! `NAME_SECRET_ARN` names a Secrets Manager secret (deployed); otherwise `NAME` itself holds
//! the value (local runs and tests).

/// The Codat client: `CODAT_BASE_URL` and the API key (`CODAT_API_KEY` or its secret).
#[cfg(feature = "codat")]
pub async fn codat_client(
    config: &aws_config::SdkConfig,
    retry_budget: std::time::Duration,
) -> Result<crate::codat::CodatClient, String> {
    let api_key = resolve(config, "CODAT_API_KEY").await?;
    crate::codat::CodatClient::from_env(&api_key, retry_budget)
}

/// Resolves the credential `name` (e.g. `CODAT_API_KEY`).
pub async fn resolve(#[allow(unused_variables)] config: &aws_config::SdkConfig, name: &str) -> Result<String, String> {
    if let Ok(arn) = std::env::var(format!("{name}_SECRET_ARN")) {
        #[cfg(feature = "secrets")]
        {
            let client = aws_sdk_secretsmanager::Client::new(config);
            let value = client.get_secret_value().secret_id(&arn).send().await.map_err(|e| {
                format!("cannot read the secret for {name}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
            })?;
            return value
                .secret_string
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the secret for {name} is empty"));
        }
        #[cfg(not(feature = "secrets"))]
        return Err(format!("{name}_SECRET_ARN is set ({arn}) but this build has no Secrets Manager support"));
    }
    crate::required_env(name)
}
