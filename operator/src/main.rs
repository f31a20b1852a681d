//! `fjord-operator`: runs the FjordCluster, Topic, ConsumerGroup and User controllers, with
//! leader election through a Lease and an HTTP endpoint for `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use fjord_operator::context::Context;
use fjord_operator::lease::LeaderElector;
use fjord_operator::metrics::Metrics;
use fjord_operator::netpol::OperatorPeer;
use fjord_operator::{cluster, group, topic, user};

#[derive(Parser, Debug)]
#[command(name = "fjord-operator", version, about)]
struct Args {
    /// Watch only these namespaces (comma-separated, or the flag repeated); all
    /// namespaces when none is given. The chart's `watchNamespaces` sets it, with RBAC
    /// in those namespaces only.
    #[arg(
        long = "watch-namespaces",
        alias = "namespace",
        env = "FJORD_OPERATOR_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    watch_namespaces: Vec<String>,
    /// Labels of the operator's own pods (`k=v,k=v`): each FjordCluster's NetworkPolicy
    /// opens the brokers' operator port to these pods, in the operator's namespace
    /// (POD_NAMESPACE), only.
    #[arg(
        long,
        env = "FJORD_OPERATOR_POD_LABELS",
        default_value = fjord_operator::netpol::DEFAULT_OPERATOR_POD_LABELS,
        value_parser = fjord_operator::netpol::parse_labels
    )]
    operator_pod_labels: std::collections::BTreeMap<String, String>,
    /// Address of the HTTP endpoint (/metrics, /healthz).
    #[arg(
        long,
        env = "FJORD_OPERATOR_HTTP_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    http_listen: SocketAddr,
    /// Elect a leader through a Lease before reconciling (needed with two replicas).
    #[arg(long, env = "FJORD_OPERATOR_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease; the pod's namespace in a cluster.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "fjord-operator")]
    lease_name: String,
    /// Seconds between comparisons of a Ready Topic with its broker topic, which set
    /// back changes made by other tools.
    #[arg(
        long,
        env = "FJORD_OPERATOR_TOPIC_RESYNC_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    topic_resync_seconds: u64,
    /// Seconds between comparisons of a Ready User's ACLs and credential with the
    /// brokers', which set back ACLs changed by other tools.
    #[arg(
        long,
        env = "FJORD_OPERATOR_USER_RESYNC_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    user_resync_seconds: u64,
    /// Log format: text or json.
    #[arg(long, env = "FJORD_OPERATOR_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let metrics = Metrics::default();
    let mut ctx = Context::new(client.clone(), metrics.clone());
    ctx.topic_resync = Duration::from_secs(args.topic_resync_seconds);
    ctx.operator_peer = OperatorPeer {
        namespace: Some(args.lease_namespace.clone()),
        pod_labels: args.operator_pod_labels.clone(),
    };
    let ctx = Arc::new(ctx);

    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { metrics.encode() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding {}", args.http_listen))?;
    tracing::info!(addr = %args.http_listen, "serving /metrics and /healthz");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let elector = args.leader_elect.then(|| {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("fjord-operator-{}", std::process::id()));
        LeaderElector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            identity,
            Duration::from_secs(15),
        )
    });
    if let Some(elector) = &elector {
        tracing::info!(lease = %args.lease_name, "waiting for leadership");
        elector.acquire().await;
        tracing::info!("leading");
    }

    let namespaces = watched(&args.watch_namespaces);
    tracing::info!(namespaces = ?namespaces, "starting controllers (None: all namespaces)");
    // One set of controllers per watched namespace: a namespaced install has RBAC in
    // those namespaces only, so nothing may list or watch across all of them.
    let user_resync = Duration::from_secs(args.user_resync_seconds);
    let controllers = futures::future::join_all(namespaces.into_iter().map(|ns| {
        let ctx = ctx.clone();
        async move {
            let ns = ns.as_deref();
            tokio::join!(
                cluster::run(ctx.clone(), ns),
                topic::run(ctx.clone(), ns),
                group::run(ctx.clone(), ns),
                user::run(ctx.clone(), ns, user_resync)
            );
        }
    }));
    match &elector {
        Some(elector) => tokio::select! {
            _ = controllers => {}
            _ = elector.keep() => {
                // Exit rather than risk two leaders; the Deployment restarts us as a follower.
                anyhow::bail!("lost the leader Lease");
            }
        },
        None => {
            controllers.await;
        }
    }
    Ok(())
}

/// The namespaces to run controllers for: each listed one once, or `None` (all) when
/// the list is empty.
fn watched(list: &[String]) -> Vec<Option<String>> {
    let mut namespaces: Vec<String> = list
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_namespaces() {
        assert_eq!(watched(&[]), [None]);
        assert_eq!(watched(&["".into()]), [None]);
        assert_eq!(
            watched(&["b".into(), " a".into(), "b".into()]),
            [Some("a".to_string()), Some("b".to_string())]
        );
        let args = Args::parse_from(["fjord-operator", "--watch-namespaces", "x,y"]);
        assert_eq!(args.watch_namespaces, ["x", "y"]);
        let args = Args::parse_from(["fjord-operator", "--namespace=x"]);
        assert_eq!(args.watch_namespaces, ["x"]);
        let args = Args::parse_from([
            "fjord-operator",
            "--operator-pod-labels=app.kubernetes.io/name=fjord-operator,app.kubernetes.io/instance=r",
        ]);
        assert_eq!(args.operator_pod_labels.len(), 2);
        assert!(Args::try_parse_from(["fjord-operator", "--operator-pod-labels=nope"]).is_err());
    }
}
