//! Server transactions (RFC 3261 §17.2, with the RFC 6026 Accepted state).

use crate::sip::{HeaderName, Request, Response, StatusCode};

use super::client::ToBytesVec;
use super::error::TxError;
use super::event::{TimeoutCause, TxState};
use super::key::to_tag_of;
use super::machine::{Ctx, Fired, Retransmit, Step};

/// What the server INVITE transaction did with an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckOutcome {
    /// The ACK for our non-2xx final (or a copy of it): absorbed.
    Absorbed,
    /// The ACK ended the transaction (reliable transport, timer I = 0).
    Terminate,
    /// Not ours to absorb: the ACK for a 2xx, for the TU.
    ToTu,
}

/// INVITE server transaction (figure 7, RFC 6026 figure 7).
#[derive(Debug)]
pub(super) struct ServerInvite {
    state: TxState,
    request: Request,
    /// The last response sent (provisional or final), for retransmission.
    last: Option<Vec<u8>>,
    /// To tag of the last final, for RFC 2543 ACK matching.
    final_to_tag: Option<String>,
}

impl ServerInvite {
    /// Starts the automatic-100 timer and the guard for a TU that never
    /// sends a final.
    pub(super) fn start(request: Request, ctx: &mut Ctx<'_>) -> ServerInvite {
        if let Some(d) = ctx.cfg.auto_trying {
            ctx.timers.trying = Some(ctx.at(d));
        }
        ctx.timers.timeout = Some((ctx.at(ctx.cfg.timer_c), TimeoutCause::NoFinalResponse));
        ServerInvite {
            state: TxState::Proceeding,
            request,
            last: None,
            final_to_tag: None,
        }
    }

    pub(super) fn state(&self) -> TxState {
        self.state
    }

    pub(super) fn final_to_tag(&self) -> Option<&str> {
        self.final_to_tag.as_deref()
    }

    /// A retransmitted INVITE.
    pub(super) fn on_retransmission(&mut self, ctx: &mut Ctx<'_>) {
        ctx.absorbed();
        if matches!(self.state, TxState::Proceeding | TxState::Completed) {
            if let Some(last) = &self.last {
                ctx.send(last.clone());
            }
        }
    }

    pub(super) fn on_ack(&mut self, ctx: &mut Ctx<'_>) -> AckOutcome {
        match self.state {
            TxState::Completed => {
                ctx.absorbed();
                self.state = TxState::Confirmed;
                ctx.timers.clear();
                if ctx.reliable() {
                    return AckOutcome::Terminate;
                }
                // Timer I.
                ctx.timers.linger = Some(ctx.at(ctx.cfg.timers.t4));
                AckOutcome::Absorbed
            }
            TxState::Accepted => AckOutcome::ToTu,
            _ => {
                ctx.absorbed();
                AckOutcome::Absorbed
            }
        }
    }

    pub(super) fn send_response(
        &mut self,
        response: &Response,
        ctx: &mut Ctx<'_>,
    ) -> Result<Step, TxError> {
        let code = response.status.as_u16();
        match (self.state, code) {
            (TxState::Proceeding, 100..=199) => {
                let bytes = response.to_bytes_vec();
                ctx.send(bytes.clone());
                self.last = Some(bytes);
                ctx.timers.trying = None;
                ctx.timers.timeout = Some((ctx.at(ctx.cfg.timer_c), TimeoutCause::NoFinalResponse));
                Ok(Step::Continue)
            }
            (TxState::Proceeding, 200..=299) => {
                // RFC 6026 §8.5: Accepted, timer L = 64*T1; the 2xx itself is
                // retransmitted by the UAS core (the layer's Uas2xxRetransmitter).
                ctx.send(response.to_bytes_vec());
                self.state = TxState::Accepted;
                self.last = None;
                ctx.timers.clear();
                ctx.timers.linger = Some(ctx.at(ctx.t1_x64()));
                Ok(Step::Continue)
            }
            (TxState::Accepted, 200..=299) => {
                ctx.send(response.to_bytes_vec());
                Ok(Step::Continue)
            }
            (TxState::Proceeding, _) => {
                let bytes = response.to_bytes_vec();
                ctx.send(bytes.clone());
                self.last = Some(bytes);
                self.final_to_tag = to_tag_of(&response.headers);
                self.state = TxState::Completed;
                ctx.timers.clear();
                if !ctx.reliable() {
                    // Timer G.
                    ctx.timers.retransmit = Some(Retransmit::start(ctx.now, ctx.t1()));
                }
                ctx.timers.timeout = Some((ctx.at(ctx.t1_x64()), TimeoutCause::TimerH));
                Ok(Step::Continue)
            }
            (state, _) => Err(TxError::InvalidState {
                key: ctx.key.clone(),
                state,
                status: response.status,
            }),
        }
    }

    pub(super) fn on_timer(&mut self, fired: Fired, ctx: &mut Ctx<'_>) -> Step {
        match fired {
            Fired::Timeout(cause) => ctx.timeout(cause),
            Fired::Linger => Step::Terminate,
            Fired::Trying => {
                if self.state == TxState::Proceeding && self.last.is_none() {
                    let bytes = trying(&self.request).to_bytes_vec();
                    ctx.send(bytes.clone());
                    self.last = Some(bytes);
                }
                Step::Continue
            }
            Fired::Retransmit => {
                // Timer G: only in Completed, doubling up to T2.
                match (ctx.timers.retransmit, &self.last) {
                    (Some(r), Some(last)) if self.state == TxState::Completed => {
                        ctx.send(last.clone());
                        let interval = r.interval.saturating_mul(2).min(ctx.t2());
                        ctx.timers.retransmit = Some(r.next(interval));
                    }
                    _ => ctx.timers.retransmit = None,
                }
                Step::Continue
            }
        }
    }
}

/// `100 Trying` for a request (RFC 3261 §8.2.6.1: no To tag, Timestamp copied).
fn trying(request: &Request) -> Response {
    let mut r = request.make_response(StatusCode::TRYING, "Trying");
    if let Some(ts) = request.headers.get(&HeaderName::Timestamp) {
        r.headers.push(ts.clone());
    }
    r
}

/// Non-INVITE server transaction (figure 8).
#[derive(Debug)]
pub(super) struct ServerNonInvite {
    state: TxState,
    last: Option<Vec<u8>>,
}

impl ServerNonInvite {
    /// Starts the guard for a TU that never answers: by 64*T1 the client
    /// has given up (timer F).
    pub(super) fn start(ctx: &mut Ctx<'_>) -> ServerNonInvite {
        ctx.timers.timeout = Some((ctx.at(ctx.t1_x64()), TimeoutCause::NoFinalResponse));
        ServerNonInvite {
            state: TxState::Trying,
            last: None,
        }
    }

    pub(super) fn state(&self) -> TxState {
        self.state
    }

    pub(super) fn on_retransmission(&mut self, ctx: &mut Ctx<'_>) {
        ctx.absorbed();
        if let Some(last) = &self.last {
            ctx.send(last.clone());
        }
    }

    pub(super) fn send_response(
        &mut self,
        response: &Response,
        ctx: &mut Ctx<'_>,
    ) -> Result<Step, TxError> {
        if !matches!(self.state, TxState::Trying | TxState::Proceeding) {
            return Err(TxError::InvalidState {
                key: ctx.key.clone(),
                state: self.state,
                status: response.status,
            });
        }
        let bytes = response.to_bytes_vec();
        ctx.send(bytes.clone());
        self.last = Some(bytes);
        if response.status.is_provisional() {
            self.state = TxState::Proceeding;
            return Ok(Step::Continue);
        }
        self.state = TxState::Completed;
        ctx.timers.clear();
        if ctx.reliable() {
            return Ok(Step::Terminate);
        }
        // Timer J.
        ctx.timers.linger = Some(ctx.at(ctx.t1_x64()));
        Ok(Step::Continue)
    }

    pub(super) fn on_timer(&mut self, fired: Fired, ctx: &mut Ctx<'_>) -> Step {
        match fired {
            Fired::Timeout(cause) => ctx.timeout(cause),
            Fired::Linger => Step::Terminate,
            Fired::Trying => Step::Continue,
            Fired::Retransmit => {
                ctx.timers.retransmit = None;
                Step::Continue
            }
        }
    }
}
