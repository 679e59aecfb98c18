//! The connection every API-using subcommand shares: a kube client for ordinary requests
//! (with `--request-timeout`), one without read timeout for streams (follow logs, which
//! may be quiet for long), the namespace in force and the server URL for error messages.

use kube::{Client, Config};

use crate::errors::{explain, fail, Error, Op, Result};
use crate::kubeconfig::{load_config, GlobalArgs};

#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub stream_client: Client,
    pub namespace: String,
    pub server: String,
}

impl Ctx {
    /// Connect as the global flags say.
    pub async fn connect(g: &GlobalArgs) -> Result<Ctx> {
        let config = load_config(g).await?;
        Self::from_config(config)
    }

    pub fn from_config(config: Config) -> Result<Ctx> {
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let namespace = config.default_namespace.clone();
        let mut streaming = config.clone();
        streaming.read_timeout = None;
        let build = |c: Config| {
            Client::try_from(c).map_err(|e| {
                fail(format!(
                    "cannot set up a connection to {server}: {}",
                    crate::errors::chain(&e)
                ))
            })
        };
        Ok(Ctx {
            client: build(config)?,
            stream_client: build(streaming)?,
            namespace,
            server,
        })
    }

    /// A context over a given client (tests: a tower-test mock).
    #[cfg(test)]
    pub fn with_client(client: Client, namespace: &str) -> Ctx {
        Ctx {
            stream_client: client.clone(),
            client,
            namespace: namespace.to_string(),
            server: "https://kubernetes.test".to_string(),
        }
    }

    /// Map a kube error for operation `op` to the user's one line.
    pub fn err(&self, op: Op) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |e| Error::Failed(explain(&e, &op, &self.server))
    }
}

/// True for a 404 answer.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// True for a 403 answer.
pub fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{Api, ListParams};

    #[tokio::test]
    async fn unreachable_server_is_one_line() {
        // A port that was just free: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let ctx = Ctx::from_config(config).unwrap();
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), "default");
        let e = jobs
            .list(&ListParams::default())
            .await
            .map_err(ctx.err(Op::new("list", "jobs.batch", Some("default"))))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot reach the API server at http://127.0.0.1:{port}: connection refused")
        );
    }
}
