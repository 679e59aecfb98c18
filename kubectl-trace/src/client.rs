//! The connection every API-using subcommand shares: a kube client for ordinary requests
//! (with `--request-timeout`, 30s by default, and a bound on one reply's size), one
//! without read timeout or size bound for streams (follow logs, which may be quiet for
//! long), the namespace in force and the server URL for error messages. Lists go through
//! [`Ctx::list`] (paged, bounded) and single objects through [`Ctx::get`], so that a
//! hostile or broken server gets one clear line, not a hang or unbounded memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use http_body_util::Limited;
use kube::api::{GetParams, ListParams};
use kube::client::{ClientBuilder, DynBody};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;

use crate::errors::{
    credential_plugin_message, explain, fail, CredentialPlugin, Error, Op, Result,
};
use crate::kubeconfig::{load_config, GlobalArgs};
use crate::reply::{self, ReplyError};

/// Items asked for per list page.
pub const PAGE_SIZE: u32 = 500;
/// The most one reply may hold (ordinary requests; streams are not bounded).
pub const MAX_BODY_MIB: usize = 64;
/// The most objects one list may hold, all pages together.
pub const MAX_LIST_ITEMS: usize = 20_000;
/// The most pages one list may take (pages may be short, never endless).
pub const MAX_PAGES: usize = 1_000;

#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub stream_client: Client,
    pub namespace: String,
    pub server: String,
    /// The read timeout of `client`, for the message when it fires.
    pub read_timeout: Option<Duration>,
    /// The connect timeout of both clients.
    pub connect_timeout: Option<Duration>,
    /// The kubeconfig's credential plugin, to name it when it fails.
    pub credential: Option<CredentialPlugin>,
}

/// Where the request log goes (stderr; a test collects it).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// `-v 6` and above: every request is logged as kubectl logs it, `GET URL 200 OK in 5
/// milliseconds` (or why it failed), when its answer's head arrives.
#[derive(Clone)]
pub struct LogRequests<S> {
    inner: S,
    sink: LogSink,
    /// The server URL, for requests still relative to it.
    base: String,
}

impl<S> LogRequests<S> {
    pub fn new(inner: S, sink: LogSink, base: String) -> Self {
        LogRequests { inner, sink, base }
    }
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for LogRequests<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, std::result::Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let base = if req.uri().scheme().is_some() {
            ""
        } else {
            self.base.as_str()
        };
        let line = format!("{} {base}{}", req.method(), req.uri());
        let sink = self.sink.clone();
        let start = Instant::now();
        let answer = self.inner.call(req);
        async move {
            let r = answer.await;
            let ms = start.elapsed().as_millis();
            match &r {
                Ok(res) => sink(&format!("{line} {} in {ms} milliseconds", res.status())),
                Err(e) => sink(&format!("{line} failed after {ms} milliseconds: {e}")),
            }
            r
        }
        .boxed()
    }
}

/// A client whose replies may hold at most `max` bytes (`None`: unbounded); requests are
/// logged to `log` when given.
fn build_client(
    config: Config,
    max: Option<usize>,
    log: Option<LogSink>,
    server: &str,
) -> std::result::Result<Client, kube::Error> {
    let builder = ClientBuilder::try_from(config)?;
    let limit = move |res: http::Response<Box<DynBody>>| match max {
        Some(max) => res.map(|b| Box::new(Limited::new(b, max)) as Box<DynBody>),
        None => res,
    };
    let builder = builder.with_layer(&tower::util::MapResponseLayer::new(limit));
    Ok(match log {
        None => builder.build(),
        Some(sink) => builder
            .with_layer(&tower::layer::layer_fn(move |inner| {
                LogRequests::new(inner, sink.clone(), server.to_string())
            }))
            .build(),
    })
}

/// `30s`, `1m30s`, `500ms` for messages.
fn show_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        crate::util::format_duration(d.as_secs())
    }
}

impl Ctx {
    /// Connect as the global flags say.
    pub async fn connect(g: &GlobalArgs) -> Result<Ctx> {
        let config = load_config(g).await?;
        let log: Option<LogSink> =
            (g.verbosity >= 6).then(|| Arc::new(|line: &str| eprintln!("{line}")) as LogSink);
        Self::from_config_logged(config, log)
    }

    #[cfg(test)]
    pub fn from_config(config: Config) -> Result<Ctx> {
        Self::from_config_logged(config, None)
    }

    /// A context for `config`; every request is logged to `log` when given (`-v 6`).
    pub fn from_config_logged(config: Config, log: Option<LogSink>) -> Result<Ctx> {
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        crate::names::namespace("namespace", &config.default_namespace)?;
        let namespace = config.default_namespace.clone();
        let (read_timeout, connect_timeout) = (config.read_timeout, config.connect_timeout);
        let credential = config.auth_info.exec.as_ref().map(|x| CredentialPlugin {
            command: x.command.clone().unwrap_or_default(),
            install_hint: x.install_hint.clone(),
        });
        let mut streaming = config.clone();
        streaming.read_timeout = None;
        let build = |c: Config, max: Option<usize>| {
            build_client(c, max, log.clone(), &server).map_err(|e| {
                if let Some(m) = credential
                    .as_ref()
                    .and_then(|p| credential_plugin_message(&e, p))
                {
                    return fail(m);
                }
                fail(format!(
                    "cannot set up a connection to {server}: {}",
                    crate::errors::chain(&e)
                ))
            })
        };
        Ok(Ctx {
            client: build(config, Some(MAX_BODY_MIB << 20))?,
            stream_client: build(streaming, None)?,
            namespace,
            server,
            read_timeout,
            connect_timeout,
            credential,
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
            read_timeout: None,
            connect_timeout: None,
            credential: None,
        }
    }

    /// Map a kube error for operation `op` to the user's one line.
    pub fn err(&self, op: Op) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |e| Error::Failed(self.explain(&e, &op, None))
    }

    /// The user's line for a failed request; `path` names the request when known.
    pub fn explain(&self, e: &kube::Error, op: &Op, path: Option<&str>) -> String {
        let server = &self.server;
        if let Some(m) = self
            .credential
            .as_ref()
            .and_then(|p| credential_plugin_message(e, p))
        {
            return m;
        }
        let request = match path {
            Some(p) => format!("{} {p}", http_verb(op.verb)),
            None => format!("{} {}", op.verb, op.resource),
        };
        let mut timed_out = false;
        let mut connecting = false;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return format!(
                    "the API server at {server} answered more than {MAX_BODY_MIB} MiB for one page ({request}); refusing it"
                );
            }
            if let Some(le) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
                connecting |= le.is_connect();
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            }
            cur = err.source();
        }
        match e {
            _ if timed_out && connecting => {
                let within = self
                    .connect_timeout
                    .map(|d| format!(" within {}", show_duration(d)))
                    .unwrap_or_default();
                format!("cannot reach the API server at {server}: no connection{within}")
            }
            _ if timed_out => {
                let within = self
                    .read_timeout
                    .map(|d| format!(" within {}", show_duration(d)))
                    .unwrap_or_default();
                format!(
                    "the API server at {server} accepted the connection but did not answer{within} (--request-timeout to change)"
                )
            }
            kube::Error::FromUtf8(u) => {
                not_json(server, &request, &reply::utf8_reason(&u.utf8_error()))
            }
            kube::Error::SerdeError(s) => not_json(server, &request, &reply::short_reason(s)),
            _ => explain(e, op, server),
        }
    }

    /// Every object of a list, page by page (`limit`/`continue`), at most
    /// [`MAX_LIST_ITEMS`] in all; `ns` `None` lists all namespaces (or cluster objects).
    pub async fn list<K>(&self, ns: Option<&str>, lp: &ListParams, op: Op) -> Result<Vec<K>>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let request = kube::core::Request::new(K::url_path(&(), ns));
        let path = K::url_path(&(), ns);
        let mut lp = lp.clone();
        if lp.limit.is_none() {
            lp.limit = Some(PAGE_SIZE);
        }
        let mut items: Vec<K> = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = request
                .list(&lp)
                .map_err(|e| fail(format!("cannot build the request GET {path}: {e}")))?;
            let text = self
                .client
                .request_text(req)
                .await
                .map_err(|e| fail(self.explain(&e, &op, Some(&path))))?;
            let room = MAX_LIST_ITEMS - items.len();
            let page = reply::decode_page::<K>(&text, room)
                .map_err(|e| fail(self.reply_error(e, &op, &path)))?;
            drop(text);
            items.extend(page.items);
            match page.continue_token {
                Some(c) => lp.continue_token = Some(c),
                None => return Ok(items),
            }
        }
        Err(fail(format!(
            "the API server at {} answered more than {MAX_PAGES} pages for GET {path}; refusing it",
            self.server
        )))
    }

    /// One object; the outer error is already phrased (a bad reply), the inner one is
    /// the API's answer for the caller to sort (404, 403) or phrase with [`Ctx::err`].
    pub async fn try_get<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        op: &Op,
    ) -> Result<std::result::Result<K, kube::Error>>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let path = K::url_path(&(), ns);
        let req = kube::core::Request::new(&path)
            .get(name, &GetParams::default())
            .map_err(|e| fail(format!("cannot build the request GET {path}/{name}: {e}")))?;
        let path = format!("{path}/{name}");
        let text = match self.client.request_text(req).await {
            Ok(t) => t,
            Err(e @ kube::Error::Api(_)) => return Ok(Err(e)),
            Err(e) => return Err(fail(self.explain(&e, op, Some(&path)))),
        };
        reply::decode_object::<K>(&text)
            .map(Ok)
            .map_err(|e| fail(self.reply_error(e, op, &path)))
    }

    /// One object, every failure phrased.
    pub async fn get<K>(&self, ns: Option<&str>, name: &str, op: Op) -> Result<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.try_get(ns, name, &op).await?.map_err(self.err(op))
    }

    fn reply_error(&self, e: ReplyError, op: &Op, path: &str) -> String {
        let server = &self.server;
        match e {
            ReplyError::NotJson(why) => not_json(server, &format!("GET {path}"), &why),
            ReplyError::TooMany { .. } => format!(
                "the API server at {server} answered more than {MAX_LIST_ITEMS} {} for GET {path}; refusing them",
                op.resource
            ),
            ReplyError::MissingName => format!(
                "the API server at {server} sent a {} without metadata.name (GET {path}); it is not a valid Kubernetes object",
                op.kind()
            ),
        }
    }
}

fn not_json(server: &str, request: &str, why: &str) -> String {
    format!(
        "the API server at {server} sent a reply that is not valid Kubernetes JSON ({request}): {why}"
    )
}

/// The HTTP method of an RBAC verb, for messages naming a request.
fn http_verb(verb: &str) -> &'static str {
    match verb {
        "create" => "POST",
        "delete" => "DELETE",
        "patch" => "PATCH",
        "update" => "PUT",
        _ => "GET",
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
