//! The DataDump's home in Kubernetes: the finalizer (merge patches guarded by
//! resourceVersion), and reading the Secret and ConfigMap keys the spec names (connection
//! string, webhook, CA bundle, client certificate). I/O.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::act::{ActError, Home, KeyContent};
use crate::api::{ConfigMapKeyRef, DataDump, SecretKeyRef};
use crate::backend::SecretValue;
use crate::plan::FINALIZER;

/// [`Home`] on the Kubernetes API.
#[derive(Clone)]
pub struct KubeHome {
    client: Client,
}

impl KubeHome {
    /// A home using this client.
    pub fn new(client: Client) -> Self {
        KubeHome { client }
    }

    async fn set_finalizers(&self, dd: &DataDump, finalizers: Vec<String>) -> Result<(), ActError> {
        let api: Api<DataDump> = Api::namespaced(self.client.clone(), &dd.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": dd.resource_version()}});
        api.patch(&dd.name_any(), &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch))
            .await
            .map_err(ActError::Object)?;
        Ok(())
    }
}

impl Home for KubeHome {
    async fn add_finalizer(&self, dd: &DataDump) -> Result<(), ActError> {
        let mut finalizers = dd.finalizers().to_vec();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
        self.set_finalizers(dd, finalizers).await
    }

    async fn remove_finalizer(&self, dd: &DataDump) -> Result<(), ActError> {
        let finalizers = dd.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        self.set_finalizers(dd, finalizers).await
    }

    async fn confirm_current(&self, dd: &DataDump) -> Result<(), ActError> {
        // a merge patch that changes nothing but names the resourceVersion read: the API server
        // refuses it (409) when the object changed since, and writes nothing otherwise (and it
        // needs no other verb than the finalizer's patch)
        let api: Api<DataDump> = Api::namespaced(self.client.clone(), &dd.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"resourceVersion": dd.resource_version()}});
        match api
            .patch(&dd.name_any(), &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if crate::act::kube_conflict(&e) => Err(ActError::Stale {
                read: dd.resource_version().unwrap_or_default(),
            }),
            Err(e) => Err(ActError::Object(e)),
        }
    }

    async fn read_secret(&self, dd: &DataDump, secret: &SecretKeyRef, content: KeyContent) -> Result<SecretValue, ActError> {
        let fail = |reason: String| ActError::Secret {
            content,
            name: secret.name.clone(),
            key: secret.key.clone(),
            reason,
            source: None,
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &dd.namespace().unwrap_or_default());
        let found = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| ActError::Secret {
                content,
                name: secret.name.clone(),
                key: secret.key.clone(),
                reason: e.to_string(),
                source: Some(e),
            })?
            .ok_or_else(|| fail("the Secret does not exist".into()))?;
        let bytes = found
            .data
            .as_ref()
            .and_then(|d| d.get(&secret.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                found
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&secret.key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| fail("the key is not in the Secret".into()))?;
        let value = String::from_utf8(bytes).map_err(|_| fail("the value is not UTF-8".into()))?;
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(fail("the value is empty".into()));
        }
        Ok(SecretValue::new(value))
    }
    async fn read_config_map(&self, dd: &DataDump, key: &ConfigMapKeyRef, content: KeyContent) -> Result<String, ActError> {
        let fail = |reason: String, source: Option<kube::Error>| ActError::ConfigMap {
            content,
            name: key.name.clone(),
            key: key.key.clone(),
            reason,
            source,
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &dd.namespace().unwrap_or_default());
        let found = api
            .get_opt(&key.name)
            .await
            .map_err(|e| fail(e.to_string(), Some(e)))?
            .ok_or_else(|| fail("the ConfigMap does not exist".into(), None))?;
        let value = match (
            found.data.as_ref().and_then(|d| d.get(&key.key)),
            found.binary_data.as_ref().and_then(|d| d.get(&key.key)),
        ) {
            (Some(text), _) => text.clone(),
            (None, Some(bytes)) => String::from_utf8(bytes.0.clone()).map_err(|_| fail("the value is not UTF-8 text".into(), None))?,
            (None, None) => return Err(fail("the key is not in the ConfigMap".into(), None)),
        };
        if value.trim().is_empty() {
            return Err(fail("the value is empty".into(), None));
        }
        Ok(value)
    }
}
