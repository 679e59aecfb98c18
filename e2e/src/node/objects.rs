//! Typed access to the API store for the fake node: the controllers and the kubelet read
//! objects as k8s-openapi types and write a status back as its typed form. The store keeps
//! JSON (so that the API server round-trips fields it does not know); a status update
//! replaces only `.status`, so the rest of a stored object stays as it was.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata, Resource as K8sResource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::resources::{self, Resource};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{ApiError, State};

/// A k8s-openapi type the store serves.
pub trait Object: K8sResource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned {
    /// The store's resource for this type.
    fn resource() -> &'static Resource {
        resources::get(Self::GROUP, Self::URL_PATH_SEGMENT)
    }
}

impl<K: K8sResource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned> Object for K {}

/// An object as its type (`None` when the stored JSON does not fit it).
pub fn typed<K: DeserializeOwned>(v: &Value) -> Option<K> {
    serde_json::from_value(v.clone()).ok()
}

/// An object as JSON, with its apiVersion and kind.
pub fn json<K: Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// `ns/name` of kind `K`, typed.
pub fn get<K: Object>(st: &State, ns: &str, name: &str) -> Option<K> {
    st.get(K::resource(), ns, name).and_then(typed)
}

/// Objects of kind `K` in `ns` (or all namespaces) matching `labels`, typed.
pub fn list<K: Object>(st: &State, ns: Option<&str>, labels: &LabelSelector) -> Vec<K> {
    st.list(K::resource(), ns, labels, &FieldSelector::default())
        .iter()
        .filter_map(typed)
        .collect()
}

/// Create `obj` in `ns` (the store fills its metadata and admits it); the stored object.
pub fn create<K: Object>(st: &mut State, ns: &str, obj: &K) -> Result<K, ApiError> {
    let created = st.create(K::resource(), ns, json(obj))?;
    typed(&created).ok_or_else(|| ApiError::bad_request("the stored object does not fit its type"))
}

/// Change the status of `ns/name` of kind `K` through its typed form `S`; the object
/// after the change.
pub fn update_status<K: Object, S: Serialize + DeserializeOwned + Default>(
    st: &mut State,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut S),
) -> Option<K> {
    st.update(K::resource(), ns, name, |obj| {
        let mut status: S = obj.get("status").and_then(typed).unwrap_or_default();
        f(&mut status);
        obj["status"] = json(&status);
    })
    .as_ref()
    .and_then(typed)
}

/// Record an event about `obj`.
pub fn event<K: Object>(
    st: &mut State,
    obj: &K,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    st.event(&json(obj), type_, reason, message, component);
}

/// The reference a controller puts in the objects it owns.
pub fn owner_ref<K: Object>(owner: &K) -> OwnerReference {
    let meta = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner of kind `kind` of an object.
pub fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.kind == kind)
}

/// Name, namespace and uid of an object (empty when unset).
pub fn ids(meta: &ObjectMeta) -> (String, String, String) {
    (
        meta.name.clone().unwrap_or_default(),
        meta.namespace.clone().unwrap_or_default(),
        meta.uid.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::store::Store;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Pod, PodStatus};
    use serde_json::json;

    /// A store with the namespace `default`.
    fn store() -> Store {
        let store = Store::default();
        let ns = resources::get("", "namespaces");
        store
            .lock()
            .create(ns, "", json!({"metadata": {"name": "default"}}))
            .unwrap();
        store
    }

    fn job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
               "spec": {"futureField": 1, "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn a_typed_status_update_keeps_the_rest_of_the_stored_object() {
        let store = store();
        let mut st = store.lock();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"futureField": 1, "containers": [{"name": "c", "image": "i"}]}});
        st.create(Pod::resource(), "default", pod).unwrap();
        update_status::<Pod, PodStatus>(&mut st, "default", "p", |s| {
            s.phase = Some("Running".into())
        });
        let pod = update_status::<Pod, PodStatus>(&mut st, "default", "p", |s| {
            s.pod_ip = Some("10.0.0.1".into())
        })
        .unwrap();
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        let raw = st.get(Pod::resource(), "default", "p").unwrap();
        assert_eq!(raw["spec"]["futureField"], 1, "{raw}");
        assert_eq!(
            raw["status"],
            json!({"phase": "Running", "podIP": "10.0.0.1"})
        );
    }

    #[test]
    fn typed_reads_owner_references_and_creates() {
        let store = store();
        let mut st = store.lock();
        st.create(Job::resource(), "default", job()).unwrap();
        let job: Job = get(&st, "default", "j").unwrap();
        let (name, ns, uid) = ids(&job.metadata);
        assert_eq!((name.as_str(), ns.as_str()), ("j", "default"));
        assert!(!uid.is_empty());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                owner_references: Some(vec![owner_ref(&job)]),
                ..Default::default()
            },
            spec: job.spec.clone().unwrap().template.spec,
            status: None,
        };
        let created = create(&mut st, "default", &pod).unwrap();
        let owner = controller_of(&created.metadata, "Job").unwrap();
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.name.as_str(),
                owner.uid.as_str()
            ),
            ("batch/v1", "j", uid.as_str())
        );
        assert_eq!(owner.controller, Some(true));
        assert!(controller_of(&created.metadata, "CronJob").is_none());
        assert_eq!(
            list::<Pod>(&st, Some("default"), &LabelSelector::default()).len(),
            1
        );
        assert!(get::<Pod>(&st, "other", "p").is_none());
    }
}
