//! The resources the fake API server serves, with their group, version, kind and scope,
//! and a schema check through the k8s-openapi type of each.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One served resource type.
#[derive(Debug)]
pub struct Resource {
    /// API group, `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, as in URLs and RBAC: `jobs`.
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Decodes an object through its k8s-openapi type: `Err` when it does not fit the schema.
    pub decode: fn(&Value) -> Result<(), String>,
}

impl Resource {
    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `jobs.batch`, `pods`: as the API names it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Short names in discovery, as `kubectl get po` resolves them.
    pub fn short_names(&self) -> &'static [&'static str] {
        match self.plural {
            "namespaces" => &["ns"],
            "nodes" => &["no"],
            "pods" => &["po"],
            "configmaps" => &["cm"],
            "persistentvolumeclaims" => &["pvc"],
            "events" => &["ev"],
            "serviceaccounts" => &["sa"],
            "cronjobs" => &["cj"],
            "deployments" => &["deploy"],
            "replicasets" => &["rs"],
            "statefulsets" => &["sts"],
            "daemonsets" => &["ds"],
            _ => &[],
        }
    }

    /// Categories in discovery: the workload kinds are in `all` (`kubectl get all`).
    pub fn categories(&self) -> &'static [&'static str] {
        match self.plural {
            "pods" | "jobs" | "cronjobs" | "deployments" | "replicasets" | "statefulsets"
            | "daemonsets" => &["all"],
            _ => &[],
        }
    }

    /// `Job.batch`, `Pod`: as the API names the kind in validation messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

fn decode<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};

macro_rules! res {
    ($group:expr, $version:expr, $plural:expr, $kind:expr, $ns:expr, $ty:ty) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            kind: $kind,
            namespaced: $ns,
            decode: decode::<$ty>,
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[Resource] = &[
    res!("", "v1", "namespaces", "Namespace", false, core::Namespace),
    res!("", "v1", "nodes", "Node", false, core::Node),
    res!("", "v1", "pods", "Pod", true, core::Pod),
    res!("", "v1", "configmaps", "ConfigMap", true, core::ConfigMap),
    res!(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        core::PersistentVolumeClaim
    ),
    res!("", "v1", "events", "Event", true, core::Event),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        core::ServiceAccount
    ),
    res!("batch", "v1", "jobs", "Job", true, batch::Job),
    res!("batch", "v1", "cronjobs", "CronJob", true, batch::CronJob),
    res!(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        apps::Deployment
    ),
    res!(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        apps::ReplicaSet
    ),
    res!(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        apps::StatefulSet
    ),
    res!(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        apps::DaemonSet
    ),
];

/// Find a resource by group and plural.
pub fn find(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Find a resource by group and plural, panicking when unknown (internal use).
pub fn get(group: &str, plural: &str) -> &'static Resource {
    find(group, plural).unwrap_or_else(|| panic!("unknown resource {plural}.{group}"))
}

/// Find a resource by apiVersion and kind (owner references, involved objects).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}
