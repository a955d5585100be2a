//! A media shard: one thread, one `epoll`, many calls.
//!
//! The thread sleeps in `Poll::poll` until a socket is readable, a command
//! arrives (a `mio::Waker`), or its next 20 ms tick is due. Datagrams are
//! handed to their call's [`RtpSession`] stamped with the time they were
//! read; on each tick every call's session runs once and its packets go out
//! with non-blocking sends.

use super::metrics::MediaMetrics;
use super::{MediaError, MediaEvent, MAX_CATCH_UP};
use crate::endpoint::CallHandle;
use crate::rtp::session::{Received, RtpSession, SessionEvent, TransmitKind, MAX_DATAGRAM};
use crate::sdp::Negotiated;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vocelio_codecs::port::HangupReason;
use vocelio_codecs::wav::StereoRecorder;
use vocelio_codecs::FRAME_MS;

const WAKER: Token = Token(usize::MAX);
const PERIOD: Duration = Duration::from_millis(FRAME_MS as u64);

/// A call handed to a shard.
pub(crate) struct NewCall {
    pub call: CallHandle,
    pub session: RtpSession,
    pub rtp: mio::net::UdpSocket,
    pub rtcp: mio::net::UdpSocket,
    pub recorder: Option<StereoRecorder>,
}

/// What the rest of the engine asks of a shard.
pub(crate) enum ShardCommand {
    Open(Box<NewCall>),
    Update(CallHandle, Box<Negotiated>),
    Dtmf {
        call: CallHandle,
        digit: char,
        duration_ms: u32,
    },
    Close(CallHandle, HangupReason),
    Stop,
}

/// Sends commands to a shard and wakes it.
#[derive(Clone)]
pub(crate) struct ShardHandle {
    tx: Sender<ShardCommand>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for ShardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardHandle")
    }
}

impl ShardHandle {
    pub fn try_send(&self, cmd: ShardCommand) -> Result<(), MediaError> {
        self.tx.send(cmd).map_err(|_| MediaError::Gone)?;
        self.waker.wake().map_err(|_| MediaError::Gone)
    }

    pub fn send(&self, cmd: ShardCommand) {
        let _ = self.try_send(cmd);
    }
}

struct Slot {
    call: CallHandle,
    session: RtpSession,
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    recorder: Option<StereoRecorder>,
}

pub(crate) struct Shard {
    poll: Poll,
    commands: Receiver<ShardCommand>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_call: HashMap<CallHandle, usize>,
    metrics: Arc<MediaMetrics>,
    events: mpsc::UnboundedSender<MediaEvent>,
    origin: Instant,
    buf: Box<[u8; MAX_DATAGRAM]>,
}

impl Shard {
    /// Start shard `index` on its own thread.
    pub fn spawn(
        index: usize,
        origin: Instant,
        metrics: Arc<MediaMetrics>,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<ShardHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let shard = Shard {
            poll,
            commands: rx,
            slots: Vec::new(),
            free: Vec::new(),
            by_call: HashMap::new(),
            metrics,
            events,
            origin,
            buf: Box::new([0; MAX_DATAGRAM]),
        };
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || shard.run())?;
        Ok(ShardHandle { tx, waker })
    }

    fn tick_index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / PERIOD.as_nanos()) as u64
    }

    fn deadline(&self, k: u64) -> Instant {
        self.origin + PERIOD * k as u32
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next = self.tick_index(Instant::now()) + 1;
        loop {
            let deadline = self.deadline(next);
            let timeout = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!(error = %e, "media poll failed");
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            // The tick first: a burst of arrivals must not delay every call's frame.
            let woke = Instant::now();
            if woke >= deadline {
                let due = self.tick_index(woke);
                let first = if due + 1 - next > MAX_CATCH_UP {
                    MediaMetrics::add(&self.metrics.skipped_ticks, due + 1 - next - MAX_CATCH_UP);
                    due + 1 - MAX_CATCH_UP
                } else {
                    next
                };
                for k in first..=due {
                    self.tick_all(self.deadline(k));
                }
                next = due + 1;
            }
            // Then the datagrams, stamped with when the poll returned.
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKER {
                    continue;
                }
                self.drain_socket(t.0 / 2, t.0 % 2 == 1, woke);
            }
            if !self.apply_commands() {
                break;
            }
        }
        let calls: Vec<CallHandle> = self.by_call.keys().copied().collect();
        for call in calls {
            self.close(call, HangupReason::Shutdown);
        }
    }

    /// Apply queued commands; `false` when the shard must stop.
    fn apply_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(ShardCommand::Open(c)) => self.open(*c),
                Ok(ShardCommand::Update(call, media)) => {
                    if let Some(s) = self.slot(call) {
                        if let Err(e) = s.session.update_media(*media) {
                            warn!(%call, error = %e, "re-negotiated media refused");
                        }
                    }
                }
                Ok(ShardCommand::Dtmf {
                    call,
                    digit,
                    duration_ms,
                }) => {
                    if let Some(s) = self.slot(call) {
                        s.session.dtmf_info(digit, duration_ms);
                        MediaMetrics::add(&self.metrics.dtmf_in, 1);
                    }
                }
                Ok(ShardCommand::Close(call, reason)) => self.close(call, reason),
                Ok(ShardCommand::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn slot(&mut self, call: CallHandle) -> Option<&mut Slot> {
        let idx = *self.by_call.get(&call)?;
        self.slots.get_mut(idx)?.as_mut()
    }

    fn open(&mut self, mut c: NewCall) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let reg = self.poll.registry();
        let ok = reg
            .register(&mut c.rtp, Token(idx * 2), Interest::READABLE)
            .and_then(|()| reg.register(&mut c.rtcp, Token(idx * 2 + 1), Interest::READABLE));
        if let Err(e) = ok {
            warn!(call = %c.call, error = %e, "cannot poll the call's sockets");
            self.free.push(idx);
            c.session.hang_up(HangupReason::Error);
            let _ = self.events.send(MediaEvent::Ended {
                call: c.call,
                stats: c.session.stats(),
                recording: None,
            });
            return;
        }
        self.metrics
            .calls_active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        MediaMetrics::add(&self.metrics.calls_total, 1);
        self.by_call.insert(c.call, idx);
        self.slots[idx] = Some(Slot {
            call: c.call,
            session: c.session,
            rtp: c.rtp,
            rtcp: c.rtcp,
            recorder: c.recorder,
        });
    }

    fn close(&mut self, call: CallHandle, reason: HangupReason) {
        let Some(idx) = self.by_call.remove(&call) else {
            return;
        };
        let Some(mut s) = self.slots.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        let reg = self.poll.registry();
        let _ = reg.deregister(&mut s.rtp);
        let _ = reg.deregister(&mut s.rtcp);
        s.session.hang_up(reason);
        let stats = s.session.stats();
        let recording = s.recorder.take().and_then(|r| match r.finish() {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(%call, error = %e, "recording could not be finished");
                None
            }
        });
        self.metrics
            .calls_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        info!(
            %call,
            ?reason,
            packets_in = stats.packets_received,
            packets_out = stats.packets_sent,
            loss_percent = format_args!("{:.2}", stats.loss_percent),
            jitter_ms = format_args!("{:.1}", stats.jitter_ms),
            mos = format_args!("{:.2}", stats.mos),
            "media ended"
        );
        let _ = self.events.send(MediaEvent::Ended {
            call,
            stats,
            recording,
        });
    }

    fn drain_socket(&mut self, idx: usize, rtcp: bool, now: Instant) {
        let Some(Some(s)) = self.slots.get_mut(idx) else {
            return;
        };
        let m = &self.metrics;
        loop {
            let sock = if rtcp { &s.rtcp } else { &s.rtp };
            let (n, from) = match sock.recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors surface here (ECONNREFUSED after a send): not fatal.
                    debug!(call = %s.call, error = %e, "receive error");
                    break;
                }
            };
            let data = &self.buf[..n];
            let r = if rtcp {
                s.session.handle_rtcp(now, from, data)
            } else {
                s.session.handle_rtp(now, from, data)
            };
            match r {
                Received::Audio | Received::Dtmf => MediaMetrics::add(&m.packets_in, 1),
                Received::WrongSource => MediaMetrics::add(&m.wrong_source, 1),
                Received::Malformed | Received::UnknownPayloadType => {
                    MediaMetrics::add(&m.malformed, 1)
                }
                _ => {}
            }
        }
        Self::drain_events(s, &self.events);
    }

    fn tick_all(&mut self, deadline: Instant) {
        let m = &self.metrics;
        for s in self.slots.iter_mut().flatten() {
            let start = Instant::now();
            let late = start.saturating_duration_since(deadline);
            m.tick_lateness.record(late);
            if late > PERIOD {
                MediaMetrics::add(&m.late_frames, 1);
            }
            s.session.tick(start);
            let ticked = Instant::now();
            m.frame_time.record(ticked - start);
            while let Some(t) = s.session.poll_transmit() {
                let sock = match t.kind {
                    TransmitKind::Rtp => &s.rtp,
                    TransmitKind::Rtcp => &s.rtcp,
                };
                match sock.send_to(t.data, t.to) {
                    Ok(_) if t.kind == TransmitKind::Rtp => MediaMetrics::add(&m.packets_out, 1),
                    Ok(_) => {}
                    Err(e) => {
                        MediaMetrics::add(&m.send_errors, 1);
                        debug!(call = %s.call, error = %e, to = %t.to, "send failed");
                    }
                }
            }
            m.send_time.record(ticked.elapsed());
            if let Some(rec) = &mut s.recorder {
                let spf = s.session.rate().samples_per_frame();
                let caller = &s.session.last_inbound().samples()[..spf];
                let agent = &s.session.last_outbound().samples()[..spf];
                if let Err(e) = rec.write(caller, agent) {
                    warn!(call = %s.call, error = %e, "recording stopped");
                    s.recorder = None;
                }
            }
            Self::drain_events(s, &self.events);
        }
    }

    fn drain_events(s: &mut Slot, events: &mpsc::UnboundedSender<MediaEvent>) {
        while let Some(ev) = s.session.poll_event() {
            let call = s.call;
            match ev {
                SessionEvent::HangupRequested => {
                    let _ = events.send(MediaEvent::HangupRequested { call });
                }
                SessionEvent::MediaTimeout => {
                    warn!(%call, "no RTP from the peer: media timeout");
                    let _ = events.send(MediaEvent::MediaTimeout { call });
                }
                SessionEvent::Reported => {
                    let _ = events.send(MediaEvent::Quality {
                        call,
                        stats: s.session.stats(),
                    });
                }
                SessionEvent::Latched(addr) => debug!(%call, %addr, "media latched"),
                SessionEvent::SsrcChanged { old, new } => {
                    debug!(%call, old = old.0, new = new.0, "peer SSRC changed")
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}
