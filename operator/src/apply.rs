//! Server-side apply under the operator's field manager: objects and status.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::desired::FIELD_MANAGER;
use crate::{Error, Result};

/// Server-side apply of `obj` under the operator's field manager. `force` takes over
/// fields another manager set: the desired objects are the operator's alone.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or_else(|| Error::Invalid("object without name".into()))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(obj)).await?)
}

/// Writes `status` with server-side apply on the status subresource.
pub async fn apply_status<K>(api: &Api<K>, obj: &K, status: serde_json::Value) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&obj.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}
