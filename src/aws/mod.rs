//! AWS implementations of the controller's backend traits: EC2 ([`Ec2Compute`]) and SSM
//! staging ([`SsmStage`]), thin adapters over the official SDK. S3 and the one error
//! classification ([`call`]) are the worker crate's, shared. I/O.

pub mod ec2;
pub mod ssm;

pub use datadump_worker::aws::{S3Store, call, classify};
pub use ec2::Ec2Compute;
pub use ssm::SsmStage;

/// How to reach AWS: the region, and an endpoint override for a local emulator.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AwsArgs {
    /// AWS region for EC2 and SSM (and S3 unless a DataDump names its bucket's region).
    #[arg(long = "aws-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Endpoint URL for every AWS service, e.g. a local emulator (http://127.0.0.1:5000).
    #[arg(long = "aws-endpoint-url", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// Loads the SDK configuration (credentials from the default chain: env, IRSA, instance role).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(self.region.clone()));
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}
