//! The tokio driver: one task owns the [`Endpoint`] and its UDP socket; one
//! small task per TCP connection frames bytes into messages. The endpoint
//! task loops over `select!{ udp, tcp messages, commands, sleep_until(next
//! deadline) }` and flushes what the endpoint wants sent. Calls never get a
//! thread or a task of their own.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    AgentId, CallEvent, CallHandle, Endpoint, EndpointConfig, EndpointError, EndpointStats,
    TrunkConfig,
};
use crate::sip::transaction::{Peer, Transmit, TransportKind};
use crate::sip::{SipMessage, StreamFramer};

/// Largest UDP datagram we accept.
const MAX_DATAGRAM: usize = 65_535;

/// Where and how to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// Address for both transports (port 0: pick one, the same for UDP and TCP).
    pub bind: SocketAddr,
    /// Listen on UDP.
    pub udp: bool,
    /// Listen on TCP.
    pub tcp: bool,
}

/// A snapshot for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Endpoint counters.
    pub stats: EndpointStats,
    /// Live transactions.
    pub transactions: usize,
    /// RTP ports in use.
    pub ports_in_use: usize,
    /// Open TCP connections.
    pub tcp_connections: usize,
}

enum Command {
    Originate {
        to: String,
        from: String,
        trunk: String,
        /// `None`: `originate` (the endpoint's default agent).
        agent: Option<AgentId>,
        reply: oneshot::Sender<Result<CallHandle, EndpointError>>,
    },
    SetRoutes {
        numbers: HashMap<String, AgentId>,
        default_agent: Option<AgentId>,
        reply: oneshot::Sender<()>,
    },
    SetTrunks {
        trunks: Vec<TrunkConfig>,
        reply: oneshot::Sender<()>,
    },
    Hangup {
        call: CallHandle,
        reply: oneshot::Sender<Result<(), EndpointError>>,
    },
    Transfer {
        call: CallHandle,
        target: String,
        reply: oneshot::Sender<Result<(), EndpointError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Shutdown,
}

/// Talks to a running SIP service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SipHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Bound UDP address, if listening on UDP.
    pub udp_addr: Option<SocketAddr>,
    /// Bound TCP address, if listening on TCP.
    pub tcp_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Originate { .. } => "Originate",
            Command::SetRoutes { .. } => "SetRoutes",
            Command::SetTrunks { .. } => "SetTrunks",
            Command::Hangup { .. } => "Hangup",
            Command::Transfer { .. } => "Transfer",
            Command::Snapshot { .. } => "Snapshot",
            Command::Shutdown => "Shutdown",
        })
    }
}

/// The service stopped (or was never reachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SIP service has stopped")]
pub struct Stopped;

impl SipHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Place a call through `trunk`, for the default agent ([`Endpoint::originate`]).
    pub async fn originate(
        &self,
        to: &str,
        from: &str,
        trunk: &str,
    ) -> Result<Result<CallHandle, EndpointError>, Stopped> {
        self.ask(|reply| Command::Originate {
            to: to.into(),
            from: from.into(),
            trunk: trunk.into(),
            agent: None,
            reply,
        })
        .await
    }

    /// Place a call through `trunk` for `agent` ([`Endpoint::originate_as`]):
    /// its `CallEvent::Outgoing` names the agent, and the media bridge gives
    /// the answered call's port to it. A refused or unanswered call ends with
    /// `CallEvent::Hangup` (see [`super::HangupCause::is_busy`] and
    /// [`super::HangupCause::is_no_answer`]).
    pub async fn originate_as(
        &self,
        to: &str,
        from: &str,
        trunk: &str,
        agent: AgentId,
    ) -> Result<Result<CallHandle, EndpointError>, Stopped> {
        self.ask(|reply| Command::Originate {
            to: to.into(),
            from: from.into(),
            trunk: trunk.into(),
            agent: Some(agent),
            reply,
        })
        .await
    }

    /// Replace the inbound routing ([`Endpoint::set_routes`]); returns once
    /// the endpoint applies it, so the next INVITE is routed by it.
    pub async fn set_routes(
        &self,
        numbers: HashMap<String, AgentId>,
        default_agent: Option<AgentId>,
    ) -> Result<(), Stopped> {
        self.ask(|reply| Command::SetRoutes {
            numbers,
            default_agent,
            reply,
        })
        .await
    }

    /// Replace the trunk list ([`Endpoint::set_trunks`], which says what
    /// happens to registrations); returns once the endpoint applies it.
    pub async fn set_trunks(&self, trunks: Vec<TrunkConfig>) -> Result<(), Stopped> {
        self.ask(|reply| Command::SetTrunks { trunks, reply }).await
    }

    /// Hang up.
    pub async fn hangup(&self, call: CallHandle) -> Result<Result<(), EndpointError>, Stopped> {
        self.ask(|reply| Command::Hangup { call, reply }).await
    }

    /// Blind transfer.
    pub async fn transfer(
        &self,
        call: CallHandle,
        target: &str,
    ) -> Result<Result<(), EndpointError>, Stopped> {
        self.ask(|reply| Command::Transfer {
            call,
            target: target.into(),
            reply,
        })
        .await
    }

    /// Counters and sizes.
    pub async fn snapshot(&self) -> Result<Snapshot, Stopped> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// Stop the service (the task ends after this).
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// Bind the sockets and start the service. Events arrive on the returned receiver.
pub async fn start(
    mut cfg: EndpointConfig,
    listen: ListenConfig,
) -> io::Result<(
    SipHandle,
    mpsc::UnboundedReceiver<CallEvent>,
    JoinHandle<()>,
)> {
    let udp = if listen.udp {
        Some(UdpSocket::bind(listen.bind).await?)
    } else {
        None
    };
    let port = match &udp {
        Some(s) => s.local_addr()?.port(),
        None => listen.bind.port(),
    };
    let tcp = if listen.tcp {
        Some(TcpListener::bind(SocketAddr::new(listen.bind.ip(), port)).await?)
    } else {
        None
    };
    let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;
    let tcp_addr = tcp.as_ref().map(|s| s.local_addr()).transpose()?;
    if cfg.public_addr.port() == 0 {
        let bound = udp_addr.or(tcp_addr).unwrap_or(listen.bind);
        cfg.public_addr.set_port(bound.port());
    }
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let endpoint = Endpoint::new(cfg, Instant::now(), unix)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let join = tokio::spawn(run(endpoint, udp, tcp, cmd_rx, ev_tx));
    Ok((
        SipHandle {
            commands: cmd_tx,
            udp_addr,
            tcp_addr,
        },
        ev_rx,
        join,
    ))
}

struct Conns {
    writers: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    /// Outbound connections being opened, with what waits to be sent on them.
    connecting: HashMap<SocketAddr, Vec<Vec<u8>>>,
    inbound: mpsc::UnboundedSender<ConnEvent>,
}

enum ConnEvent {
    Message(SipMessage, SocketAddr),
    Closed(SocketAddr),
    Connected(TcpStream, SocketAddr),
    ConnectFailed(SocketAddr),
}

fn spawn_connection(stream: TcpStream, peer: SocketAddr, conns: &mut Conns) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    conns.writers.insert(peer, wtx);
    let inbound = conns.inbound.clone();
    tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            while let Some(item) = framer.poll() {
                match item {
                    Ok(msg) => {
                        if inbound.send(ConnEvent::Message(msg, peer)).is_err() {
                            break 'read;
                        }
                    }
                    Err(e) if framer.is_failed() => {
                        tracing::info!(%peer, error = %e, "SIP/TCP framing lost: closing the connection");
                        break 'read;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "malformed SIP message on TCP skipped")
                    }
                }
            }
        }
        let _ = inbound.send(ConnEvent::Closed(peer));
    });
}

async fn run(
    mut ep: Endpoint,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<CallEvent>,
) {
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    let mut conns = Conns {
        writers: HashMap::new(),
        connecting: HashMap::new(),
        inbound: conn_tx,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = ep.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = async { match &udp { Some(s) => s.recv_from(&mut buf).await, None => std::future::pending().await } } => {
                match r {
                    Ok((n, from)) => ep.handle_datagram(Instant::now(), &buf[..n], Peer { addr: from, transport: TransportKind::Udp }),
                    Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                }
            }
            a = async { match &tcp { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                match a {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        spawn_connection(stream, peer, &mut conns);
                    }
                    Err(e) => tracing::info!(error = %e, "TCP accept error"),
                }
            }
            Some(ev) = conn_rx.recv() => match ev {
                ConnEvent::Message(msg, peer) => ep.handle_message(Instant::now(), msg, Peer { addr: peer, transport: TransportKind::Tcp }),
                ConnEvent::Closed(peer) => { conns.writers.remove(&peer); }
                ConnEvent::Connected(stream, peer) => {
                    let _ = stream.set_nodelay(true);
                    spawn_connection(stream, peer, &mut conns);
                    for bytes in conns.connecting.remove(&peer).unwrap_or_default() {
                        if let Some(w) = conns.writers.get(&peer) {
                            let _ = w.send(bytes);
                        }
                    }
                }
                ConnEvent::ConnectFailed(peer) => {
                    // The transaction layer times the requests out (timer B/F).
                    conns.connecting.remove(&peer);
                    tracing::info!(%peer, "cannot connect to SIP peer over TCP");
                }
            },
            cmd = commands.recv() => {
                let now = Instant::now();
                match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(Command::Originate { to, from, trunk, agent, reply }) => {
                        let placed = match agent {
                            Some(agent) => ep.originate_as(now, &to, &from, &trunk, agent),
                            None => ep.originate(now, &to, &from, &trunk),
                        };
                        let _ = reply.send(placed);
                    }
                    Some(Command::SetRoutes { numbers, default_agent, reply }) => {
                        ep.set_routes(numbers, default_agent);
                        let _ = reply.send(());
                    }
                    Some(Command::SetTrunks { trunks, reply }) => {
                        ep.set_trunks(now, trunks);
                        let _ = reply.send(());
                    }
                    Some(Command::Hangup { call, reply }) => { let _ = reply.send(ep.hangup(now, call)); }
                    Some(Command::Transfer { call, target, reply }) => { let _ = reply.send(ep.transfer(now, call, &target)); }
                    Some(Command::Snapshot { reply }) => {
                        let _ = reply.send(Snapshot { stats: ep.stats(), transactions: ep.transactions(), ports_in_use: ep.ports_in_use(), tcp_connections: conns.writers.len() });
                    }
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                ep.handle_timeout(Instant::now());
            }
        }
        while let Some(Transmit { to, bytes }) = ep.poll_transmit() {
            match to.transport {
                TransportKind::Udp => {
                    if let Some(s) = &udp {
                        if let Err(e) = s.send_to(&bytes, to.addr).await {
                            tracing::debug!(peer = %to.addr, error = %e, "UDP send failed");
                        }
                    }
                }
                TransportKind::Tcp => send_tcp(&mut conns, to.addr, bytes),
            }
        }
        while let Some(ev) = ep.poll_event() {
            if events.send(ev).is_err() {
                // Nobody listens for events: keep serving calls regardless.
            }
        }
    }
    tracing::info!("SIP service stopped");
}

fn send_tcp(conns: &mut Conns, addr: SocketAddr, bytes: Vec<u8>) {
    if let Some(w) = conns.writers.get(&addr) {
        if w.send(bytes).is_err() {
            conns.writers.remove(&addr);
        }
        return;
    }
    if let Some(queue) = conns.connecting.get_mut(&addr) {
        queue.push(bytes);
        return;
    }
    // No connection to that peer yet (outbound toward a TCP trunk): open one
    // without stalling the endpoint loop.
    conns.connecting.insert(addr, vec![bytes]);
    let inbound = conns.inbound.clone();
    tokio::spawn(async move {
        let ev =
            match tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(addr))
                .await
            {
                Ok(Ok(stream)) => ConnEvent::Connected(stream, addr),
                _ => ConnEvent::ConnectFailed(addr),
            };
        let _ = inbound.send(ev);
    });
}
