//! Connections: how many may be open, how long one may take to say what it wants, and the one
//! loop that serves them all, plain or TLS.
//!
//! Every accepted socket takes a permit of `limits.max_connections` for its whole life; past the
//! limit a new one is closed at once and counted, so an idle flood costs the attacker its own
//! sockets, never the server's descriptors (the soft descriptor limit is raised to the hard one
//! at start, and the connection limit is kept below it). A connection has
//! `limits.header_read_timeout_seconds` from the moment it is ready for a request until that
//! request's headers are complete: this bounds slowloris clients and idle keep-alive connections
//! alike. TLS handshakes in progress take a permit of their own (`limits.max_tls_handshakes`).
//!
//! Each request carries a [`Connection`] extension: the peer, the local address it came in on
//! and, over TLS, the server name the client asked for. The perimeter's Host check uses them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt;

use crate::metrics::Metrics;

/// Descriptors kept free for everything that is not a connection: model files, the audit log,
/// `keys.toml` reloads, a python step's pipes.
const DESCRIPTOR_RESERVE: u64 = 128;

/// What the server knows of the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The TLS server name (SNI) the client sent, lower-cased; `None` over plain HTTP or when
    /// the client sent none (clients connecting to an IP address send none).
    pub server_name: Option<Arc<str>>,
}

/// The connection limits, shared by every accept loop.
pub struct ConnectionLimits {
    open: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    pub header_read_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ConnectionLimits {
    pub fn new(limits: &gatehouse_core::settings::LimitSettings, metrics: Arc<Metrics>) -> ConnectionLimits {
        let descriptors = raise_descriptor_limit();
        let wanted = limits.max_connections as u64;
        let max = match descriptors {
            Some(available) if available < wanted + DESCRIPTOR_RESERVE => {
                let max = available.saturating_sub(DESCRIPTOR_RESERVE).max(16);
                tracing::warn!(
                    event = "connection_limit_lowered",
                    wanted,
                    max,
                    descriptors = available,
                    "the process may not open enough files for limits.max_connections; raise the hard limit (ulimit -Hn) to allow more"
                );
                max
            }
            _ => wanted,
        } as usize;
        ConnectionLimits {
            open: Arc::new(Semaphore::new(max)),
            handshakes: Arc::new(Semaphore::new(limits.max_tls_handshakes as usize)),
            header_read_timeout: Duration::from_secs(u64::from(limits.header_read_timeout_seconds)),
            metrics,
        }
    }

    /// A permit for one more open connection, or `None` (counted) when the limit is reached.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.open.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.metrics.rate_limited("connections");
        }
        permit
    }

    /// A permit for one more TLS handshake in progress, or `None` (counted).
    pub fn admit_handshake(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.handshakes.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.metrics.rate_limited("tls_handshakes");
        }
        permit
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// The soft limit on open files raised to the hard one; returns the limit now in force.
fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current
}

/// A connection that passed the limits, with the permit it holds for its whole life.
pub struct Admitted<Io> {
    pub io: Io,
    pub connection: Connection,
    pub permit: OwnedSemaphorePermit,
}

/// Accepts plain TCP connections on `listener` and hands them on.
pub fn accept_plain(
    listener: TcpListener,
    limits: Arc<ConnectionLimits>,
    sender: mpsc::Sender<Admitted<TcpStream>>,
) {
    tokio::spawn(async move {
        loop {
            let Some((stream, peer)) = accept(&listener).await else {
                continue;
            };
            let Some(permit) = limits.admit() else {
                drop(stream);
                continue;
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let admitted = Admitted {
                io: stream,
                connection: Connection {
                    peer,
                    local,
                    server_name: None,
                },
                permit,
            };
            if sender.send(admitted).await.is_err() {
                return;
            }
        }
    });
}

/// One accepted socket, or `None` after an accept error (logged, and waited out: out of file
/// descriptors and the like would otherwise spin).
pub async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(accepted) => {
            // Responses are small and latency matters more than packet count.
            let _ = accepted.0.set_nodelay(true);
            Some(accepted)
        }
        Err(error) => {
            tracing::warn!(event = "accept_failed", %error, "could not accept a connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// What a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The HTTP port: HTTP/1.1 with keep-alive and upgrades.
    Http1,
    /// The gRPC port: HTTP/2 only, as gRPC is.
    Http2,
}

/// How many calls one HTTP/2 connection may have in flight; the server-wide request limit
/// still applies across all of them.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// Serves every connection from `incoming` with `app` until `shutdown` completes, then lets the
/// open ones finish their requests (bounded by the caller's grace period).
pub async fn serve<Io>(
    mut incoming: mpsc::Receiver<Admitted<Io>>,
    app: Router,
    protocol: Protocol,
    limits: Arc<ConnectionLimits>,
    shutdown: impl Future<Output = ()>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let admitted = tokio::select! {
            admitted = incoming.recv() => admitted,
            () = &mut shutdown => break,
        };
        let Some(admitted) = admitted else { break };
        match protocol {
            Protocol::Http1 => {
                tokio::spawn(serve_one(admitted, app.clone(), limits.clone(), stopping.clone()));
            }
            Protocol::Http2 => {
                tokio::spawn(serve_one_h2(
                    admitted,
                    app.clone(),
                    limits.clone(),
                    stopping.clone(),
                ));
            }
        }
    }
    // New connections are no longer taken; each open one finishes its request in flight.
    drop(incoming);
    drop(stopping);
    let _ = stop.send(true);
    stop.closed().await;
}

/// `app` as a hyper service whose requests carry the connection they came on.
fn connection_service(
    app: Router,
    connection: Connection,
    first_request: Option<Arc<tokio::sync::Notify>>,
) -> impl hyper::service::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    let peer = connection.peer;
    let connection = Arc::new(connection);
    let service = app.map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
        if let Some(first) = &first_request {
            first.notify_one();
        }
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        extensions.insert(Connection::clone(&connection));
        request.map(axum::body::Body::new)
    });
    TowerToHyperService::new(service.map_err(|never: Infallible| match never {}))
}

async fn serve_one<Io>(
    admitted: Admitted<Io>,
    app: Router,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Admitted {
        io,
        connection,
        permit: _permit,
    } = admitted;
    let service = connection_service(app, connection, None);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Upgrades (WebSocket) are passed on by a guard once the request was admitted; the ONNX
    // routes never accept one.
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(error) = result
        && error.is_timeout()
    {
        limits.metrics.rate_limited("header_timeout");
    }
}

/// An HTTP/2 connection's transport, said not to take vectored writes. h2 keeps a DATA payload
/// of 256 bytes or more apart from its write buffer when the transport is vectored, and writes
/// nothing after such a payload until it is flushed: a unary gRPC reply (headers, a message of a
/// few hundred bytes, trailers) then leaves in two writes, and the second costs a loopback
/// delivery and a wake-up of the client. Without vectored writes h2 copies payloads under 1 KiB
/// into its buffer, and the reply leaves in one.
struct Unvectored<Io>(Io);

impl<Io: AsyncRead + Unpin> AsyncRead for Unvectored<Io> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Unvectored<Io> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// One HTTP/2 connection. HTTP/2 has no header read timeout of its own, so a connection that has
/// not started a call within `limits.header_read_timeout` of opening is closed, as a slow HTTP/1
/// client is; once it has, it may stay open and idle, as gRPC channels do, with pings finding
/// peers that went away. The connection limit bounds how many there are.
async fn serve_one_h2<Io>(
    admitted: Admitted<Io>,
    app: Router,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Admitted {
        io,
        connection,
        permit: _permit,
    } = admitted;
    let first_request = Arc::new(tokio::sync::Notify::new());
    let service = connection_service(app, connection, Some(first_request.clone()));
    let mut builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let connection = builder.serve_connection(TokioIo::new(Unvectored(io)), service);
    let mut connection = std::pin::pin!(connection);
    let started = tokio::select! {
        result = connection.as_mut() => { let _ = result; return; }
        () = first_request.notified() => true,
        () = tokio::time::sleep(limits.header_read_timeout) => false,
        _ = stopping.wait_for(|stop| *stop) => true,
    };
    if !started {
        limits.metrics.rate_limited("header_timeout");
        return;
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.as_mut().await;
        }
    }
}
