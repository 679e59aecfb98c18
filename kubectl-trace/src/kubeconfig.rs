//! The global connection flags kubectl would have handled for a built-in command
//! (`--kubeconfig`, `--context`, `--cluster`, `--user`, `-n`, `--request-timeout`, `--as`,
//! `--as-group`, `--as-uid`, `--server`, `--token`, `--certificate-authority`,
//! `--insecure-skip-tls-verify`, `-v`) and the loading of the kubeconfig they select: a multi-path
//! `KUBECONFIG` is merged, the context's namespace is the default namespace, and an
//! in-cluster service account is used when there is no kubeconfig at all.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::errors::{chain, fail, Result};
use crate::util::parse_duration;

/// How long a request waits for the API server's answer without `--request-timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the API server may take without `--request-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace of the trace (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Time to wait for the API server's answer to one request (e.g. 10s, 1m; 0 waits forever) [default: 30s, and 10s to connect; followed logs wait forever once connected]
    #[arg(long, global = true, value_name = "DUR")]
    pub request_timeout: Option<String>,
    /// User to impersonate
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// UID to impersonate
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    pub as_uid: Option<String>,
    /// The address of the API server (overrides the kubeconfig's cluster; works without one)
    #[arg(short = 's', long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for the API server
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Path to a PEM file of certificate authorities for the API server
    #[arg(long, global = true, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Do not check the API server's certificate (insecure)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Log level: 6 or more logs every request (method, URL, status, time) on stderr
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "N",
        default_value_t = 0
    )]
    pub verbosity: u8,
}

impl GlobalArgs {
    fn options(&self) -> KubeConfigOptions {
        KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        }
    }

    /// `--request-timeout`, `None` for no timeout.
    pub fn timeout(&self) -> Result<Option<Duration>> {
        match &self.request_timeout {
            None => Ok(None),
            Some(t) => {
                let secs =
                    parse_duration(t).map_err(|e| fail(format!("--request-timeout: {e}")))?;
                Ok((secs > 0).then(|| Duration::from_secs(secs)))
            }
        }
    }
}

/// Read the kubeconfig the flags and environment point at; `Ok(None)` when there is none.
pub fn read_kubeconfig(g: &GlobalArgs) -> Result<Option<Kubeconfig>> {
    let bad = |e: kube::config::KubeconfigError| fail(format!("bad kubeconfig: {}", chain(&e)));
    if let Some(path) = &g.kubeconfig {
        if !path.exists() {
            return Err(fail(format!(
                "kubeconfig {} does not exist",
                path.display()
            )));
        }
        return Kubeconfig::read_from(path).map(Some).map_err(bad);
    }
    if let Some(cfg) = Kubeconfig::from_env().map_err(bad)? {
        return Ok(Some(cfg));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    if let Some(home) = home {
        let path = PathBuf::from(home).join(".kube").join("config");
        if path.exists() {
            return Kubeconfig::read_from(&path).map(Some).map_err(bad);
        }
    }
    Ok(None)
}

/// The namespace the flags select without building a client: `-n`, else the selected
/// context's namespace, else `default`. Never fails (used by `--dry-run=client`).
pub fn namespace_offline(g: &GlobalArgs) -> String {
    if let Some(ns) = &g.namespace {
        return ns.clone();
    }
    let Ok(Some(cfg)) = read_kubeconfig(g) else {
        return "default".to_string();
    };
    let ctx_name = g.context.clone().or(cfg.current_context.clone());
    ctx_name
        .and_then(|name| cfg.contexts.iter().find(|c| c.name == name).cloned())
        .and_then(|c| c.context)
        .and_then(|c| c.namespace)
        .unwrap_or_else(|| "default".to_string())
}

/// The name used for the cluster, user and context made from `--server` when there is
/// no kubeconfig.
const FLAGS_ENTRY: &str = "kubectl-trace-flags";

/// Apply `--server`, `--certificate-authority`, `--insecure-skip-tls-verify` and
/// `--token` to the cluster and user the flags and context select, as kubectl does; with
/// no kubeconfig at all, `--server` makes one.
pub fn apply_connection_flags(
    kc: Option<Kubeconfig>,
    g: &GlobalArgs,
) -> Result<Option<Kubeconfig>> {
    use kube::config::{AuthInfo, Cluster, Context, NamedAuthInfo, NamedCluster, NamedContext};
    let any = g.server.is_some()
        || g.token.is_some()
        || g.certificate_authority.is_some()
        || g.insecure_skip_tls_verify;
    if !any {
        return Ok(kc);
    }
    let mut kc = match kc {
        Some(kc) => kc,
        None if g.server.is_some() => Kubeconfig {
            current_context: Some(FLAGS_ENTRY.to_string()),
            ..Default::default()
        },
        None => return Ok(None),
    };
    let ctx_name = g
        .context
        .clone()
        .or(kc.current_context.clone())
        .unwrap_or_else(|| FLAGS_ENTRY.to_string());
    if !kc.contexts.iter().any(|c| c.name == ctx_name) {
        if g.server.is_none() {
            return Ok(Some(kc)); // load_config reports the missing context
        }
        kc.contexts.push(NamedContext {
            name: ctx_name.clone(),
            context: Some(Context {
                cluster: FLAGS_ENTRY.to_string(),
                user: Some(FLAGS_ENTRY.to_string()),
                ..Default::default()
            }),
            other: Default::default(),
        });
    }
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .unwrap_or_default();
    let cluster_name = g.cluster.clone().unwrap_or(context.cluster);
    let user_name = g
        .user
        .clone()
        .or(context.user)
        .unwrap_or_else(|| FLAGS_ENTRY.to_string());
    if !kc.clusters.iter().any(|c| c.name == cluster_name) {
        kc.clusters.push(NamedCluster {
            name: cluster_name.clone(),
            cluster: Some(Cluster::default()),
            other: Default::default(),
        });
    }
    if !kc.auth_infos.iter().any(|a| a.name == user_name) {
        kc.auth_infos.push(NamedAuthInfo {
            name: user_name.clone(),
            auth_info: Some(AuthInfo::default()),
            other: Default::default(),
        });
    }
    if let Some(nc) = kc.clusters.iter_mut().find(|c| c.name == cluster_name) {
        let c = nc.cluster.get_or_insert_with(Cluster::default);
        if let Some(server) = &g.server {
            c.server = Some(server.clone());
        }
        if let Some(ca) = &g.certificate_authority {
            if !ca.exists() {
                return Err(fail(format!(
                    "--certificate-authority {} does not exist",
                    ca.display()
                )));
            }
            c.certificate_authority = Some(ca.display().to_string());
            c.certificate_authority_data = None;
        }
        if g.insecure_skip_tls_verify {
            c.insecure_skip_tls_verify = Some(true);
        }
    }
    if let Some(token) = &g.token {
        // kube's token is a secret string; it is made the way kube reads it.
        let with_token: AuthInfo = serde_json::from_value(serde_json::json!({ "token": token }))
            .map_err(|e| fail(format!("--token: {e}")))?;
        if let Some(na) = kc.auth_infos.iter_mut().find(|a| a.name == user_name) {
            let a = na.auth_info.get_or_insert_with(AuthInfo::default);
            a.token = with_token.token;
            a.token_file = None;
            a.exec = None;
            a.auth_provider = None;
            a.username = None;
            a.password = None;
        }
    }
    Ok(Some(kc))
}

/// Build the client configuration the flags select.
pub async fn load_config(g: &GlobalArgs) -> Result<Config> {
    let mut config = match apply_connection_flags(read_kubeconfig(g)?, g)? {
        Some(kc) => {
            if let Some(ctx) = &g.context {
                if !kc.contexts.iter().any(|c| &c.name == ctx) {
                    return Err(fail(format!("context {ctx:?} not found in the kubeconfig")));
                }
            } else if kc.current_context.is_none() && g.cluster.is_none() {
                return Err(fail(
                    "bad kubeconfig: no current-context is set (pass --context NAME)",
                ));
            }
            Config::from_custom_kubeconfig(kc, &g.options())
                .await
                .map_err(|e| fail(format!("bad kubeconfig: {}", chain(&e))))?
        }
        None => {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                Config::incluster().map_err(|e| {
                    fail(format!(
                        "cannot use the in-cluster configuration: {}",
                        chain(&e)
                    ))
                })?
            } else {
                return Err(fail(
                    "no kubeconfig found: set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config",
                ));
            }
        }
    };
    if let Some(ns) = &g.namespace {
        crate::names::namespace("-n/--namespace", ns)?;
        config.default_namespace = ns.clone();
    }
    if let Some(user) = &g.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !g.as_group.is_empty() {
        if g.as_user.is_none() {
            return Err(fail("--as-group needs --as USER"));
        }
        config.auth_info.impersonate_groups = Some(g.as_group.clone());
    }
    if let Some(uid) = &g.as_uid {
        if g.as_user.is_none() {
            return Err(fail("--as-uid needs --as USER"));
        }
        config.auth_info.impersonate_uid = Some(uid.clone());
    }
    let (connect, read) = match &g.request_timeout {
        None => (Some(DEFAULT_CONNECT_TIMEOUT), Some(DEFAULT_READ_TIMEOUT)),
        Some(_) => (g.timeout()?, g.timeout()?),
    };
    config.connect_timeout = connect;
    config.read_timeout = read;
    config.write_timeout = read;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: http://127.0.0.1:6443
- name: c2
  cluster:
    server: http://127.0.0.1:7443
users:
- name: u1
  user:
    token: abc
contexts:
- name: dev
  context:
    cluster: c1
    user: u1
    namespace: tracing
- name: prod
  context:
    cluster: c2
    user: u1
"#;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[tokio::test]
    async fn request_timeouts_default_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "config", TWO_CONTEXTS);
        let mut g = GlobalArgs {
            kubeconfig: Some(path),
            ..Default::default()
        };
        // No flag: a server that never answers must not hang the plugin forever.
        let c = load_config(&g).await.unwrap();
        assert_eq!(c.read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
        g.request_timeout = Some("2s".into());
        let c = load_config(&g).await.unwrap();
        assert_eq!(c.read_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)));
        // 0: no timeout, as kubectl's --request-timeout=0.
        g.request_timeout = Some("0".into());
        let c = load_config(&g).await.unwrap();
        assert_eq!((c.read_timeout, c.connect_timeout), (None, None));
        g.request_timeout = Some("soon".into());
        assert!(load_config(&g)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("--request-timeout: invalid duration \"soon\""));
        g.request_timeout = None;
        g.namespace = Some("a\nb".into());
        assert!(load_config(&g)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("invalid -n/--namespace \"a\\nb\""));
    }

    #[tokio::test]
    async fn context_namespace_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "config", TWO_CONTEXTS);
        let mut g = GlobalArgs {
            kubeconfig: Some(path),
            ..Default::default()
        };
        let c = load_config(&g).await.unwrap();
        assert_eq!(c.default_namespace, "tracing");
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:6443/");
        assert_eq!(namespace_offline(&g), "tracing");

        g.context = Some("prod".into());
        let c = load_config(&g).await.unwrap();
        assert_eq!(c.default_namespace, "default");
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:7443/");

        g.namespace = Some("other".into());
        g.as_user = Some("alice".into());
        g.as_group = vec!["ops".into()];
        g.request_timeout = Some("5s".into());
        let c = load_config(&g).await.unwrap();
        assert_eq!(c.default_namespace, "other");
        assert_eq!(c.auth_info.impersonate.as_deref(), Some("alice"));
        assert_eq!(
            c.auth_info.impersonate_groups,
            Some(vec!["ops".to_string()])
        );
        assert_eq!(c.read_timeout, Some(Duration::from_secs(5)));

        g.context = Some("nope".into());
        let e = load_config(&g).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "context \"nope\" not found in the kubeconfig"
        );
    }

    #[tokio::test]
    async fn connection_flags_override_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "config", TWO_CONTEXTS);
        let ca = write(&dir, "ca.pem", "not read until a TLS connection");
        let mut g = GlobalArgs {
            kubeconfig: Some(path),
            server: Some("https://10.0.0.1:6443".into()),
            token: Some("s3cret".into()),
            certificate_authority: Some(ca.clone()),
            insecure_skip_tls_verify: true,
            as_user: Some("alice".into()),
            as_uid: Some("1234".into()),
            ..Default::default()
        };
        let kc = apply_connection_flags(read_kubeconfig(&g).unwrap(), &g)
            .unwrap()
            .unwrap();
        let c1 = kc.clusters.iter().find(|c| c.name == "c1").unwrap();
        let c1 = c1.cluster.as_ref().unwrap();
        assert_eq!(c1.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(c1.certificate_authority.as_deref(), ca.to_str());
        assert_eq!(c1.insecure_skip_tls_verify, Some(true));
        // The other context's cluster is untouched.
        let c2 = kc.clusters.iter().find(|c| c.name == "c2").unwrap();
        assert_eq!(
            c2.cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:7443")
        );
        let c = load_config(&GlobalArgs {
            certificate_authority: None,
            ..g.clone()
        })
        .await
        .unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert!(c.accept_invalid_certs);
        assert_eq!(token_of(&c.auth_info).as_deref(), Some("s3cret"));
        assert_eq!(c.auth_info.impersonate_uid.as_deref(), Some("1234"));
        assert_eq!(c.default_namespace, "tracing");

        // No kubeconfig at all: --server (and --token) are enough.
        let g2 = GlobalArgs {
            server: Some("http://127.0.0.1:8080".into()),
            token: Some("t".into()),
            ..Default::default()
        };
        let kc = apply_connection_flags(None, &g2).unwrap().unwrap();
        assert_eq!(kc.current_context.as_deref(), Some(FLAGS_ENTRY));
        let c = Config::from_custom_kubeconfig(kc, &g2.options())
            .await
            .unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(c.default_namespace, "default");
        assert_eq!(token_of(&c.auth_info).as_deref(), Some("t"));

        g.as_user = None;
        g.certificate_authority = None;
        assert_eq!(
            load_config(&g).await.unwrap_err().to_string(),
            "--as-uid needs --as USER"
        );
        g.certificate_authority = Some(dir.path().join("missing.pem"));
        assert!(load_config(&g)
            .await
            .unwrap_err()
            .to_string()
            .contains("--certificate-authority"));
    }

    /// kube's secret token, read through its serde form (no extra dependency).
    fn token_of(a: &kube::config::AuthInfo) -> Option<String> {
        serde_json::to_value(a)
            .ok()?
            .get("token")?
            .as_str()
            .map(String::from)
    }

    #[tokio::test]
    async fn bad_and_missing_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "config", "clusters: [ this is : not yaml");
        let g = GlobalArgs {
            kubeconfig: Some(path),
            ..Default::default()
        };
        let e = load_config(&g).await.unwrap_err().to_string();
        assert!(e.starts_with("bad kubeconfig"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let g = GlobalArgs {
            kubeconfig: Some(dir.path().join("missing")),
            ..Default::default()
        };
        let e = load_config(&g).await.unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        // dry-run never fails on a bad kubeconfig
        assert_eq!(namespace_offline(&g), "default");
    }
}
