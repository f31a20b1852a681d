//! The runtime edge: listeners, connection tasks, timers and the HTTP endpoint. All
//! decisions live in the modules it calls.

pub mod api;
pub mod broker;
pub mod connection;
pub mod coordinator;
pub mod fetch_health;
pub mod fetcher;
pub mod fetcher_task;
pub mod http;
pub mod install;
pub mod internal_topic;
pub mod internal_topic_create;
pub mod isr_proposals;
pub mod ktls;
pub mod offline;
pub mod partition;
pub mod partition_map;
pub mod readiness;
pub mod replica;
pub mod replica_session;
pub mod replica_wire;
pub mod request_budget;
pub mod scrub;
pub mod shards;
pub mod stream;
pub mod throttle;
pub mod throttle_gate;
pub mod timer_task;
pub mod timers;
pub mod tls;
pub mod txn;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Principal;
use crate::config::listeners::{Listener, ListenerName};
use crate::config::BrokerConfig;
use broker::Broker;

/// Start-up failures, each one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("listener {listener}: cannot listen on {addr}: {source}")]
    ListenerBind {
        listener: ListenerName,
        addr: String,
        source: std::io::Error,
    },
}

/// Run one broker until `shutdown` is cancelled; then stop accepting, let requests
/// in flight finish within the grace period, and close the logs cleanly.
pub async fn run(config: BrokerConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    config.validate().map_err(StartError::Config)?;
    // Before any file or socket is opened; said once the start is sure to go on, so
    // that a start that fails says one line only.
    let open_files = raise_open_files_limit();
    // Bound now, so a taken port fails the start, but listening only once ready:
    // until this broker has joined the cluster and caught up with the metadata log,
    // clients are refused and try another broker, instead of being served from an
    // image that does not know the cluster yet.
    let listeners = config
        .listeners()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let tls = if listeners.iter().any(|l| l.protocol.is_tls()) {
        // Asked once: a kernel without TLS is said once here, never per connection.
        let kernel = ktls::KernelTls::decide(config.ssl.ssl_ktls, ktls::KernelTls::probe);
        match &kernel {
            ktls::KernelTls::Available(ciphers) => tracing::info!(
                ?ciphers,
                "kernel TLS available: TLS records are encrypted by the kernel and fetches \
                 use sendfile"
            ),
            ktls::KernelTls::Unavailable(why) => tracing::info!(
                reason = %why,
                "kernel TLS unavailable: TLS records are encrypted in user space and fetches \
                 over TLS copy"
            ),
        }
        Some(
            tls::TlsAcceptor::load(&config.ssl, &listeners, kernel)
                .map_err(|e| StartError::Config(e.to_string()))?,
        )
    } else {
        None
    };
    let mut kafka_sockets = Vec::new();
    for listener in listeners.iter() {
        kafka_sockets.push((listener.clone(), bind_listener(listener).await?));
    }
    let http_listener = bind(config.http_listen, "HTTP listener").await?;
    let internal_listener = bind(config.internal_listen, "internal listener").await?;
    let broker =
        Broker::open(config, crate::clock::SystemClock::shared()).map_err(StartError::Storage)?;
    open_files.log();
    // The group runtime exists before the metadata replay so that it hears of every
    // `__consumer_offsets` leadership from the first one on.
    let groups = Arc::new(coordinator::GroupRuntime::from_config(&broker.config));
    broker.set_groups(groups.clone());
    let (txns, txn_effects) = txn::TxnRuntime::from_config(&broker.config);
    let txns = Arc::new(txns);
    broker.set_txns(txns.clone());
    let quorum = broker.start_quorum().await.map_err(StartError::Storage)?;
    // `serving` stops the listeners and tasks; a shutdown request first moves this
    // broker's leaderships away (controlled shutdown) while it still serves.
    let serving = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(serve_internal(
        broker.clone(),
        quorum.routes(),
        internal_listener,
        serving.clone(),
    ));
    tasks.spawn(http::serve(broker.clone(), http_listener, serving.clone()));
    tasks.spawn(refresh_gauges(broker.clone(), serving.clone()));
    tasks.spawn(scrub::run(broker.clone(), serving.clone()));
    tasks.spawn(timer_task::run(broker.clone(), serving.clone()));
    tasks.spawn(retry_offline_replicas(broker.clone(), serving.clone()));
    let grace = Duration::from_millis(broker.config.shutdown_grace_ms);
    {
        let (quorum, serving, shutdown) = (quorum.clone(), serving.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            // Most of the grace period goes to moving leaderships; the rest to
            // finishing requests and closing logs.
            let moved = quorum.controlled_shutdown(grace.mul_f32(0.6)).await;
            if moved {
                tracing::info!("controlled shutdown complete: leaderships moved");
            } else {
                tracing::warn!("controlled shutdown not confirmed by the controller in time");
            }
            serving.cancel();
        });
    }
    tracing::info!(
        node_id = broker.node_id(),
        voter = broker.config.is_voter(),
        internal = %broker.config.internal_address(),
        "waiting to join the cluster"
    );
    tokio::select! {
        _ = quorum.wait_ready() => {}
        _ = serving.cancelled() => {
            return stop(&broker, &quorum, &tasks, grace).await;
        }
    }
    tasks.spawn(coordinator::lifecycle::run_timer(
        broker.clone(),
        groups,
        serving.clone(),
    ));
    tasks.spawn(txn::lifecycle::run_timer(
        broker.clone(),
        txns,
        serving.clone(),
    ));
    tasks.spawn(txn::lifecycle::run_effects(
        broker.clone(),
        txn_effects,
        serving.clone(),
    ));
    api::scram::bootstrap_credentials(&broker).await;
    let mut kafka_listeners = Vec::new();
    for (listener, (socket, addr)) in kafka_sockets {
        let bound = socket
            .listen(KAFKA_BACKLOG)
            .map_err(|source| StartError::ListenerBind {
                listener: listener.name.clone(),
                addr: addr.to_string(),
                source,
            })?;
        kafka_listeners.push((listener, bound));
    }
    broker.set_ready();
    // One connection limit and one request budget for all listeners, as Kafka's
    // max.connections and queued.max.request.bytes are broker-wide.
    let limits = ConnectionLimits::new(&broker, tls.clone());
    if let Some(tls) = &tls {
        tasks.spawn(tls::watch(tls.clone(), serving.clone()));
    }
    for (listener, bound) in kafka_listeners {
        tracing::info!(
            listener = %listener.name,
            protocol = %listener.protocol,
            listen = %bound.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            advertised = %format!("{}:{}", listener.advertised_host, listener.advertised_port),
            "listening"
        );
        tasks.spawn(accept_loop(
            broker.clone(),
            listener,
            bound,
            limits.clone(),
            tasks.clone(),
            serving.clone(),
        ));
    }
    tracing::info!(
        node_id = broker.node_id(),
        http = %broker.config.http_listen,
        data_dir = %broker.config.data_dir.display(),
        "fjord broker ready"
    );
    serving.cancelled().await;
    stop(&broker, &quorum, &tasks, grace).await
}

/// Bind a Kafka listener without listening yet (see `run`), resolving its host.
async fn bind_listener(
    listener: &Listener,
) -> Result<(tokio::net::TcpSocket, std::net::SocketAddr), StartError> {
    let address = listener.bind_address();
    let err = |source| StartError::ListenerBind {
        listener: listener.name.clone(),
        addr: address.clone(),
        source,
    };
    let addr = tokio::net::lookup_host(&address)
        .await
        .map_err(err)?
        .next()
        .ok_or_else(|| err(std::io::Error::other("host name resolves to no address")))?;
    let socket = bind_unlistened(addr, "Kafka listener")?;
    Ok((socket, addr))
}

/// What the connections of all listeners share.
#[derive(Clone)]
struct ConnectionLimits {
    permits: Arc<Semaphore>,
    budget: Arc<request_budget::RequestBudget>,
    /// The TLS configuration of SSL and SASL_SSL listeners.
    tls: Option<Arc<tls::TlsAcceptor>>,
}

impl ConnectionLimits {
    fn new(broker: &Broker, tls: Option<Arc<tls::TlsAcceptor>>) -> ConnectionLimits {
        ConnectionLimits {
            tls,
            permits: Arc::new(Semaphore::new(broker.config.max_connections)),
            budget: Arc::new(request_budget::RequestBudget::new(
                broker.config.queued_max_request_bytes,
                broker.metrics.request_read_bytes.clone(),
            )),
        }
    }
}

/// Pending connections the Kafka listener queues before they are accepted.
const KAFKA_BACKLOG: u32 = 1024;

/// A socket bound to `addr` that does not accept connections until it listens.
fn bind_unlistened(
    addr: std::net::SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpSocket, StartError> {
    let err = |source| StartError::Bind { what, addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    Ok(socket)
}

/// What became of the soft limit of open files.
#[derive(Debug)]
enum OpenFilesLimit {
    AtHard(u64),
    Raised {
        before: u64,
        after: u64,
    },
    NotRaised {
        soft: u64,
        hard: u64,
        error: nix::Error,
    },
    Unknown(nix::Error),
}

impl OpenFilesLimit {
    fn log(&self) {
        match self {
            OpenFilesLimit::AtHard(limit) => {
                tracing::info!(limit, "open files limit (RLIMIT_NOFILE) at its hard limit")
            }
            OpenFilesLimit::Raised { before, after } => tracing::info!(
                before,
                after,
                "raised the open files limit (RLIMIT_NOFILE) to its hard limit"
            ),
            OpenFilesLimit::NotRaised { soft, hard, error } => tracing::warn!(
                soft,
                hard,
                error = %error,
                "cannot raise the open files limit (RLIMIT_NOFILE) to its hard limit"
            ),
            OpenFilesLimit::Unknown(error) => {
                tracing::warn!(error = %error, "cannot read the open files limit (RLIMIT_NOFILE)")
            }
        }
    }
}

/// Raise the soft limit of open files (RLIMIT_NOFILE) to the hard limit. A broker holds
/// a descriptor per connection and per open segment and index file, and the usual soft
/// default of 1024 is far below what a broker with a few hundred partitions needs,
/// while the hard limit is what the operator (systemd, the container runtime) allows.
fn raise_open_files_limit() -> OpenFilesLimit {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => return OpenFilesLimit::Unknown(error),
    };
    if soft >= hard {
        return OpenFilesLimit::AtHard(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => OpenFilesLimit::Raised {
            before: soft,
            after: hard,
        },
        Err(error) => OpenFilesLimit::NotRaised { soft, hard, error },
    }
}

async fn bind(addr: std::net::SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Let requests in flight finish within the grace period, stop the quorum, close
/// the logs cleanly.
async fn stop(
    broker: &Arc<Broker>,
    quorum: &Arc<crate::quorum::Quorum>,
    tasks: &TaskTracker,
    grace: Duration,
) -> Result<(), StartError> {
    tasks.close();
    if tokio::time::timeout(grace.mul_f32(0.4), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "tasks still running after the grace period"
        );
    }
    quorum.shutdown().await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.close_logs())
        .await
        .expect("close task");
    tracing::info!("fjord broker stopped");
    Ok(())
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    socket: TcpListener,
    limits: ConnectionLimits,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = socket.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
            broker.metrics.connections_rejected.inc();
            tracing::warn!(%peer, max = broker.config.max_connections, "max.connections reached; closing new connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (b, budget, s, l, tls) = (
            broker.clone(),
            limits.budget.clone(),
            shutdown.clone(),
            listener.clone(),
            limits.tls.clone(),
        );
        tasks.spawn(async move {
            let (stream, principal) = match (l.protocol.is_tls(), tls) {
                (false, _) => (stream::ClientStream::Tcp(stream), Principal::anonymous()),
                (true, Some(tls)) => {
                    // The handshake is bounded like the read of a request.
                    match tls.accept(stream, &l.name, b.config.request_read_timeout_ms).await {
                        Ok((tls_stream, principal, mode)) => {
                            b.metrics
                                .tls_connections
                                .with_label_values(&[mode.label()])
                                .inc();
                            tracing::debug!(%peer, listener = %l.name, %principal, mode = mode.label(), "TLS client authenticated");
                            (tls_stream, principal)
                        }
                        Err(e) => {
                            b.metrics
                                .connections_closed
                                .with_label_values(&["tls_handshake"])
                                .inc();
                            tracing::info!(%peer, listener = %l.name, error = %e, "TLS connection refused");
                            return;
                        }
                    }
                }
                (true, None) => {
                    tracing::error!(listener = %l.name, "TLS listener without a TLS configuration");
                    return;
                }
            };
            connection::serve(b, budget, l, stream, principal, peer, s).await;
            drop(permit);
        });
    }
}

/// The internal gRPC listener: the metadata quorum and follower replication, over
/// mutual TLS when `--internal-ssl-*` is set (each call is then authorized by the
/// caller's node id, see `quorum::authz`), else plaintext as before.
async fn serve_internal(
    broker: Arc<Broker>,
    quorum_routes: tonic::service::Routes,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let tls = broker.peers.internal_tls().cloned();
    if tls.is_none() {
        tracing::warn!(
            voters = broker.config.quorum_voters().len(),
            "the internal listener is plaintext and unauthenticated (no --internal-ssl-certificate, \
             --internal-ssl-key, --internal-ssl-ca): anyone who reaches it can act as any broker"
        );
    }
    let incoming = crate::quorum::internal_tls::incoming(listener, tls);
    let served = tonic::transport::Server::builder()
        .add_routes(quorum_routes)
        .add_service(replica::ReplicaService::server(broker.clone()))
        .add_service(txn::markers::TxnMarkersService::server(broker.clone()))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "internal listener failed");
    }
}

/// How often offline replicas are looked at (each has its own backoff).
const OFFLINE_RETRY_TICK: Duration = Duration::from_millis(250);

async fn retry_offline_replicas(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(OFFLINE_RETRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        broker.retry_offline().await;
    }
}

/// The partition gauges (leaders, under-replicated, replica lag) are rebuilt from
/// every hosted partition, so at the retention check period, not per event.
async fn refresh_gauges(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        broker.refresh_log_gauges();
    }
}

/// A broker for tests that call handlers directly: a one-voter metadata quorum on an
/// ephemeral internal port, registered and ready. The returned token stops it.
#[cfg(test)]
pub(crate) async fn test_broker(mut config: BrokerConfig) -> (Arc<Broker>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.internal_listen = listener.local_addr().unwrap();
    let broker = Broker::open(config, crate::clock::SystemClock::shared()).unwrap();
    broker.set_groups(Arc::new(coordinator::GroupRuntime::from_config(
        &broker.config,
    )));
    let (txns, txn_effects) = txn::TxnRuntime::from_config(&broker.config);
    let txns = Arc::new(txns);
    broker.set_txns(txns.clone());
    let quorum = broker.start_quorum().await.unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(txn::lifecycle::run_timer(
        broker.clone(),
        txns,
        stop.clone(),
    ));
    tokio::spawn(txn::lifecycle::run_effects(
        broker.clone(),
        txn_effects,
        stop.clone(),
    ));
    tokio::spawn(serve_internal(
        broker.clone(),
        quorum.routes(),
        listener,
        stop.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(30), quorum.wait_ready())
        .await
        .expect("a one-broker cluster gets ready");
    broker.set_ready();
    (broker, stop)
}
