//! Client transactions (RFC 3261 §17.1, with the RFC 6026 Accepted state).

use crate::sip::{HeaderError, HeaderName, Headers, Method, Request, Response, SipVersion};

use super::event::{TimeoutCause, TxEvent, TxState};
use super::machine::{Ctx, Fired, Retransmit, Step};

/// INVITE client transaction (figure 5, RFC 6026 figure 5).
#[derive(Debug)]
pub(super) struct ClientInvite {
    state: TxState,
    request: Request,
    bytes: Vec<u8>,
    /// The ACK for the non-2xx final, resent on each retransmitted final.
    ack: Option<Vec<u8>>,
}

/// Sends a client transaction's request for the first time and arms its
/// timers: retransmission from T1 over UDP (A or E) and the 64*T1 timeout
/// (B or F, given as `timeout`). Returns the bytes for retransmissions.
fn send_first(request: &Request, ctx: &mut Ctx<'_>, timeout: TimeoutCause) -> Vec<u8> {
    let bytes = request.to_bytes_vec();
    ctx.send(bytes.clone());
    if !ctx.reliable() {
        ctx.timers.retransmit = Some(Retransmit::start(ctx.now, ctx.t1()));
    }
    ctx.timers.timeout = Some((ctx.at(ctx.t1_x64()), timeout));
    bytes
}

impl ClientInvite {
    /// Sends the request and starts timers A (UDP) and B.
    pub(super) fn start(request: Request, ctx: &mut Ctx<'_>) -> ClientInvite {
        let bytes = send_first(&request, ctx, TimeoutCause::TimerB);
        ClientInvite {
            state: TxState::Calling,
            request,
            bytes,
            ack: None,
        }
    }

    pub(super) fn state(&self) -> TxState {
        self.state
    }

    pub(super) fn on_response(&mut self, response: Response, ctx: &mut Ctx<'_>) -> Step {
        let code = response.status.as_u16();
        let early = matches!(self.state, TxState::Calling | TxState::Proceeding);
        match code {
            100..=199 if early => {
                self.state = TxState::Proceeding;
                ctx.timers.retransmit = None;
                ctx.timers.timeout = Some((ctx.at(ctx.cfg.timer_c), TimeoutCause::TimerC));
                self.to_tu(response, ctx);
                Step::Continue
            }
            200..=299 if early => {
                // RFC 6026 §8.4: Accepted, timer M = 64*T1.
                self.state = TxState::Accepted;
                ctx.timers.clear();
                ctx.timers.linger = Some(ctx.at(ctx.t1_x64()));
                self.to_tu(response, ctx);
                Step::Continue
            }
            200..=299 if self.state == TxState::Accepted => {
                self.to_tu(response, ctx);
                Step::Continue
            }
            300..=699 if early => {
                self.state = TxState::Completed;
                ctx.timers.clear();
                if let Ok(ack) = build_ack(&self.request, &response) {
                    let bytes = ack.to_bytes_vec();
                    ctx.send(bytes.clone());
                    self.ack = Some(bytes);
                }
                self.to_tu(response, ctx);
                if ctx.reliable() {
                    return Step::Terminate;
                }
                ctx.timers.linger = Some(ctx.at(ctx.cfg.timer_d));
                Step::Continue
            }
            300..=699 if self.state == TxState::Completed => {
                if let Some(ack) = &self.ack {
                    ctx.send(ack.clone());
                }
                ctx.absorbed();
                Step::Continue
            }
            _ => {
                ctx.absorbed();
                Step::Continue
            }
        }
    }

    fn to_tu(&self, response: Response, ctx: &mut Ctx<'_>) {
        ctx.event(TxEvent::Response {
            key: ctx.key.clone(),
            response,
        });
    }

    pub(super) fn on_timer(&mut self, fired: Fired, ctx: &mut Ctx<'_>) -> Step {
        match fired {
            Fired::Timeout(cause) => ctx.timeout(cause),
            Fired::Linger => Step::Terminate,
            Fired::Trying => Step::Continue,
            Fired::Retransmit => {
                // Timer A: only in Calling; doubles without a cap (B ends it).
                match ctx.timers.retransmit {
                    Some(r) if self.state == TxState::Calling => {
                        ctx.send(self.bytes.clone());
                        ctx.timers.retransmit = Some(r.next(r.interval.saturating_mul(2)));
                    }
                    _ => ctx.timers.retransmit = None,
                }
                Step::Continue
            }
        }
    }
}

/// Non-INVITE client transaction (figure 6).
#[derive(Debug)]
pub(super) struct ClientNonInvite {
    state: TxState,
    bytes: Vec<u8>,
}

impl ClientNonInvite {
    /// Sends the request and starts timers E (UDP) and F.
    pub(super) fn start(request: &Request, ctx: &mut Ctx<'_>) -> ClientNonInvite {
        let bytes = send_first(request, ctx, TimeoutCause::TimerF);
        ClientNonInvite {
            state: TxState::Trying,
            bytes,
        }
    }

    pub(super) fn state(&self) -> TxState {
        self.state
    }

    pub(super) fn on_response(&mut self, response: Response, ctx: &mut Ctx<'_>) -> Step {
        if !matches!(self.state, TxState::Trying | TxState::Proceeding) {
            ctx.absorbed();
            return Step::Continue;
        }
        let provisional = response.status.is_provisional();
        ctx.event(TxEvent::Response {
            key: ctx.key.clone(),
            response,
        });
        if provisional {
            // Timer E keeps running; from its next firing on it uses T2.
            self.state = TxState::Proceeding;
            return Step::Continue;
        }
        self.state = TxState::Completed;
        ctx.timers.clear();
        if ctx.reliable() {
            return Step::Terminate;
        }
        // Timer K.
        ctx.timers.linger = Some(ctx.at(ctx.cfg.timers.t4));
        Step::Continue
    }

    pub(super) fn on_timer(&mut self, fired: Fired, ctx: &mut Ctx<'_>) -> Step {
        match fired {
            Fired::Timeout(cause) => ctx.timeout(cause),
            Fired::Linger => Step::Terminate,
            Fired::Trying => Step::Continue,
            Fired::Retransmit => {
                let Some(r) = ctx.timers.retransmit else {
                    return Step::Continue;
                };
                let interval = match self.state {
                    TxState::Trying => r.interval.saturating_mul(2).min(ctx.t2()),
                    TxState::Proceeding => ctx.t2(),
                    _ => {
                        ctx.timers.retransmit = None;
                        return Step::Continue;
                    }
                };
                ctx.send(self.bytes.clone());
                ctx.timers.retransmit = Some(r.next(interval));
                Step::Continue
            }
        }
    }
}

/// The ACK for a non-2xx final (RFC 3261 §17.1.1.3): Request-URI, Call-ID,
/// From and the top Via of the request, To of the response, CSeq number of
/// the request with method ACK, the request's Route set and Max-Forwards.
pub(super) fn build_ack(request: &Request, response: &Response) -> Result<Request, HeaderError> {
    let rh = &request.headers;
    let mut headers = Headers::new();
    headers.append(HeaderName::Via, &rh.top_via()?.to_string())?;
    match rh.get(&HeaderName::MaxForwards) {
        Some(h) => headers.push(h.clone()),
        None => headers.append(HeaderName::MaxForwards, "70")?,
    }
    for h in rh.get_all(&HeaderName::Route) {
        headers.push(h.clone());
    }
    let copy = |headers: &mut Headers, name: HeaderName, from: &Headers| {
        from.get(&name)
            .cloned()
            .map(|h| headers.push(h))
            .ok_or(HeaderError::Missing { name })
    };
    copy(&mut headers, HeaderName::From, rh)?;
    copy(&mut headers, HeaderName::To, &response.headers)
        .or_else(|_| copy(&mut headers, HeaderName::To, rh))?;
    copy(&mut headers, HeaderName::CallId, rh)?;
    headers.append(HeaderName::CSeq, &format!("{} ACK", rh.cseq()?.seq))?;
    Ok(Request {
        method: Method::Ack,
        uri: request.uri.clone(),
        version: SipVersion::V2_0,
        headers,
        body: Vec::new(),
    })
}

/// Serialisation helper so the call sites read the same for both types.
pub(super) trait ToBytesVec {
    fn to_bytes_vec(&self) -> Vec<u8>;
}

impl ToBytesVec for Request {
    fn to_bytes_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_to(&mut out);
        out
    }
}

impl ToBytesVec for Response {
    fn to_bytes_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_to(&mut out);
        out
    }
}
