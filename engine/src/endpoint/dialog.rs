//! Dialog state (RFC 3261 §12) and building requests inside a dialog.

use crate::sip::{
    CallId, HeaderError, HeaderName, Headers, Method, NameAddr, Request, Response, SipVersion, Uri,
};

/// Why a dialog could not be created from a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The message has no tag where the dialog needs one.
    #[error("{which} has no tag")]
    MissingTag {
        /// `From` or `To`.
        which: &'static str,
    },
}

/// One side of a call's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: CallId,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our URI (From in our requests), without tag.
    pub local_uri: NameAddr,
    /// Their URI (To in our requests), without tag.
    pub remote_uri: NameAddr,
    /// Where in-dialog requests are addressed (their Contact).
    pub remote_target: Uri,
    /// Route set, in the order our requests carry it.
    pub route_set: Vec<NameAddr>,
    /// Our last CSeq.
    pub local_cseq: u32,
    /// Their last CSeq, if they have sent an in-dialog request.
    pub remote_cseq: Option<u32>,
}

fn without_tag(mut na: NameAddr) -> NameAddr {
    na.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    na
}

fn contact_uri(headers: &Headers, fallback: &Uri) -> Uri {
    match headers.contacts() {
        Ok(Some(crate::sip::Contacts::List(list))) => list
            .into_iter()
            .next()
            .map(|c| c.addr.uri)
            .unwrap_or_else(|| fallback.clone()),
        _ => fallback.clone(),
    }
}

impl Dialog {
    /// The UAS side, from a dialog-creating request we answer with `local_tag`.
    pub fn uas(req: &Request, local_tag: &str, local_cseq: u32) -> Result<Dialog, DialogError> {
        let from = req.headers.from()?;
        let remote_tag = from
            .tag()
            .ok_or(DialogError::MissingTag { which: "From" })?
            .as_str()
            .to_string();
        let to = req.headers.to()?;
        Ok(Dialog {
            call_id: req.headers.call_id()?,
            local_tag: local_tag.to_string(),
            remote_tag,
            local_uri: without_tag(to),
            remote_target: contact_uri(&req.headers, &from.uri),
            remote_uri: without_tag(from),
            // UAS: the Record-Route order as received.
            route_set: req.headers.record_routes()?,
            local_cseq,
            remote_cseq: Some(req.headers.cseq()?.seq),
        })
    }

    /// The UAC side, from our dialog-creating request and the 2xx (or 1xx with tag) it got.
    pub fn uac(req: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        let from = req.headers.from()?;
        let local_tag = from
            .tag()
            .ok_or(DialogError::MissingTag { which: "From" })?
            .as_str()
            .to_string();
        let to = resp.headers.to()?;
        let remote_tag = to
            .tag()
            .ok_or(DialogError::MissingTag { which: "To" })?
            .as_str()
            .to_string();
        let mut route_set = resp.headers.record_routes()?;
        // UAC: the Record-Route order reversed.
        route_set.reverse();
        Ok(Dialog {
            call_id: req.headers.call_id()?,
            local_tag,
            remote_tag,
            local_uri: without_tag(from),
            remote_target: contact_uri(&resp.headers, &req.uri),
            remote_uri: without_tag(to),
            route_set,
            local_cseq: req.headers.cseq()?.seq,
            remote_cseq: None,
        })
    }

    /// Whether an in-dialog request's CSeq is new (not a retransmission or out of order).
    pub fn accept_remote_cseq(&mut self, seq: u32) -> bool {
        match self.remote_cseq {
            Some(last) if seq <= last => false,
            _ => {
                self.remote_cseq = Some(seq);
                true
            }
        }
    }

    /// A new in-dialog request (`method`), with the next CSeq (ACK and CANCEL reuse
    /// the INVITE's: pass `cseq_override`). `via` is the full Via value with a fresh branch.
    pub fn request(
        &mut self,
        method: Method,
        via: &str,
        contact: &str,
        cseq_override: Option<u32>,
    ) -> Request {
        let seq = match cseq_override {
            Some(s) => s,
            None => {
                self.local_cseq = self.local_cseq.wrapping_add(1);
                self.local_cseq
            }
        };
        let mut h = Headers::new();
        push(&mut h, HeaderName::Via, via);
        push(&mut h, HeaderName::MaxForwards, "70");
        for route in &self.route_set {
            push(&mut h, HeaderName::Route, &route.to_string());
        }
        push(
            &mut h,
            HeaderName::From,
            &format!("{};tag={}", self.local_uri, self.local_tag),
        );
        push(
            &mut h,
            HeaderName::To,
            &format!("{};tag={}", self.remote_uri, self.remote_tag),
        );
        push(&mut h, HeaderName::CallId, self.call_id.as_str());
        push(&mut h, HeaderName::CSeq, &format!("{seq} {method}"));
        if !matches!(method, Method::Ack | Method::Cancel) {
            push(&mut h, HeaderName::Contact, contact);
        }
        Request {
            method,
            uri: self.remote_target.clone(),
            version: SipVersion::V2_0,
            headers: h,
            body: Vec::new(),
        }
    }
}

/// Append a header we built ourselves (values are well-formed by construction).
pub(crate) fn push(h: &mut Headers, name: HeaderName, value: &str) {
    // Header::new only refuses CR/LF/NUL, which our values never contain;
    // drop rather than panic if one ever did.
    if let Ok(header) = crate::sip::Header::new(name, value) {
        h.push(header);
    }
}
