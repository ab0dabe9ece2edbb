//! SSM Parameter Store as [`SecretStage`]: credentials (connection strings, client
//! certificates with their keys) staged as SecureStrings for the worker's instance role,
//! deleted when the media type ends. Intelligent tiering: a value over the standard tier's
//! 4 KiB (a certificate chain and its key can be) becomes an advanced parameter (8 KiB)
//! instead of failing. I/O.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterTier, ParameterType, Tag};

use super::{call, classify};
use crate::backend::tags;
use crate::backend::{BackendError, SecretStage, SecretValue};

/// SSM through the AWS SDK.
#[derive(Clone, Debug)]
pub struct SsmStage {
    client: Client,
    managed_by: String,
}

impl SsmStage {
    /// An adapter whose parameters are tagged with `managed_by`.
    pub fn new(config: &aws_config::SdkConfig, managed_by: impl Into<String>) -> Self {
        SsmStage {
            client: Client::new(config),
            managed_by: managed_by.into(),
        }
    }
}

impl SecretStage for SsmStage {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), BackendError> {
        // Tags cannot be given together with Overwrite, so create first and overwrite on conflict.
        let created = self
            .client
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(ParameterType::SecureString)
            .tier(ParameterTier::IntelligentTiering)
            .description("datadump: a database credential staged for one worker")
            .tags(
                Tag::builder()
                    .key(tags::MANAGED_BY)
                    .value(&self.managed_by)
                    .build()
                    .expect("tag has key and value"),
            )
            .send()
            .await;
        match created {
            Ok(_) => {
                datadump_worker::aws::observe("PutParameter", "ok");
                Ok(())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_already_exists()) => {
                datadump_worker::aws::observe("PutParameter", "exists");
                call(
                    "PutParameter",
                    self.client
                        .put_parameter()
                        .name(name)
                        .value(value.expose())
                        .r#type(ParameterType::SecureString)
                        .tier(ParameterTier::IntelligentTiering)
                        .overwrite(true)
                        .send(),
                )
                .await?;
                Ok(())
            }
            Err(e) => datadump_worker::aws::observed("PutParameter", Err(classify("PutParameter", e))),
        }
    }

    async fn delete(&self, names: &[String]) -> Result<(), BackendError> {
        // DeleteParameters takes at most 10 names and reports missing ones without failing.
        for chunk in names.chunks(10) {
            call(
                "DeleteParameters",
                self.client.delete_parameters().set_names(Some(chunk.to_vec())).send(),
            )
            .await?;
        }
        Ok(())
    }
}
