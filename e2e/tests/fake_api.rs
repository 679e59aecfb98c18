//! Self-tests of the harness through kube-rs (the plugin's client) with pods as local
//! processes: the fake API's shapes, errors, selectors and watch, and PodSecurity
//! admission of the Job controller's pods (none of which depends on the runtime), then
//! the node scenarios of [`api_scenarios`], which `fake_api_containerd` runs under
//! containerd.

use std::time::Duration;

use e2e::node::containerd::CgroupLayout;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use api_scenarios::{client, cluster, job};

/// Pods as local processes.
const RUNTIME: Option<CgroupLayout> = None;

mod api_scenarios;

#[tokio::test]
async fn api_shapes_and_errors() {
    let c = cluster();
    let client = client(&c);
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<_> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["node-a", "node-b"]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}}),
    )
    .unwrap();
    let made = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(
        made.metadata.uid.is_some()
            && made.metadata.resource_version.is_some()
            && made.metadata.creation_timestamp.is_some()
    );
    match cms.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        r => panic!("{r:?}"),
    }
    match cms.get("nope").await {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (404, "configmaps \"nope\" not found")
        ),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        cms.list(&ListParams::default().labels("x=1"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        cms.list(&ListParams::default().labels("x=2"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    assert_eq!(
        cms.list(&ListParams::default().fields("metadata.name=a"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    c.forbid("create", "jobs.batch");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    match jobs
        .create(&PostParams::default(), &job("j", "true", 1))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message
                    .contains("cannot create resource \"jobs\" in API group \"batch\""),
                "{}",
                s.message
            );
        }
        r => panic!("{r:?}"),
    }
    let nss: Api<Namespace> = Api::all(client);
    assert!(nss.get("default").await.is_ok());
}

#[tokio::test]
async fn watch_streams_changes() {
    let c = cluster();
    let client = client(&c);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut stream = watcher(
        cms.clone(),
        watcher::Config::default().fields("metadata.name=w"),
    )
    .applied_objects()
    .boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "w"}})).unwrap();
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cms.create(&PostParams::default(), &cm).await.unwrap();
    });
    let got = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("w"));
    creator.await.unwrap();
}

#[tokio::test]
async fn admission_rejects_privileged_pods_with_failed_create() {
    let c = cluster();
    c.reject_privileged("default");
    let client = client(&c);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut j = job("priv", "true", 1);
    let spec = j.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.host_pid = Some(true);
    spec.containers[0].security_context =
        Some(serde_json::from_value(json!({"privileged": true})).unwrap());
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let events: Api<Event> = Api::namespaced(client, "default");
    let mut msg = String::new();
    for _ in 0..50 {
        let l = events
            .list(&ListParams::default().fields("involvedObject.kind=Job,involvedObject.name=priv"))
            .await
            .unwrap();
        if let Some(e) = l
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedCreate"))
        {
            msg = e.message.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(msg.starts_with("Error creating: pods \"priv-"), "{msg}");
    assert!(
        msg.ends_with("is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true), privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{msg}"
    );
    assert!(c.list("", "pods", "default", "job-name=priv").is_empty());
}
