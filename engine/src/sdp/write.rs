//! Canonical serialisation: CRLF line ends, RFC 4566 §5 order
//! (`v o s i u e p c b t r z k a`, then per media `m i c b k a`), single
//! spaces between fields.

use std::io::Write as _;

use super::types::{
    Attribute, Bandwidth, Connection, Formats, MediaDescription, SessionDescription,
};

fn line(out: &mut Vec<u8>, kind: u8, value: &str) {
    out.push(kind);
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn connection_value(out: &mut Vec<u8>, c: &Connection) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "IN {} {}", c.addr_type.as_str(), c.address);
    if let Some(ttl) = c.ttl {
        let _ = write!(out, "/{ttl}");
    }
    if let Some(count) = c.count {
        let _ = write!(out, "/{count}");
    }
}

fn connection(out: &mut Vec<u8>, c: &Connection) {
    out.extend_from_slice(b"c=");
    connection_value(out, c);
    out.extend_from_slice(b"\r\n");
}

fn bandwidths(out: &mut Vec<u8>, bs: &[Bandwidth]) {
    for b in bs {
        let _ = write!(out, "b={}:{}\r\n", b.bwtype, b.bandwidth);
    }
}

fn attribute(out: &mut Vec<u8>, a: &Attribute) {
    out.extend_from_slice(b"a=");
    let _ = match a {
        Attribute::RtpMap(m) => {
            let _ = write!(
                out,
                "rtpmap:{} {}/{}",
                m.payload_type, m.encoding, m.clock_rate
            );
            match m.channels {
                Some(c) => write!(out, "/{c}"),
                None => Ok(()),
            }
        }
        Attribute::Fmtp(f) if f.params.is_empty() => write!(out, "fmtp:{}", f.payload_type),
        Attribute::Fmtp(f) => write!(out, "fmtp:{} {}", f.payload_type, f.params),
        Attribute::Ptime(p) => write!(out, "ptime:{p}"),
        Attribute::MaxPtime(p) => write!(out, "maxptime:{p}"),
        Attribute::Direction(d) => write!(out, "{d}"),
        Attribute::Rtcp(r) => {
            let _ = write!(out, "rtcp:{}", r.port);
            if let Some(c) = &r.connection {
                out.push(b' ');
                connection_value(out, c);
            }
            Ok(())
        }
        Attribute::Other { name, value: None } => write!(out, "{name}"),
        Attribute::Other {
            name,
            value: Some(v),
        } => write!(out, "{name}:{v}"),
    };
    out.extend_from_slice(b"\r\n");
}

fn media(out: &mut Vec<u8>, m: &MediaDescription) {
    let _ = write!(out, "m={} {}", m.kind.as_str(), m.port);
    if let Some(n) = m.port_count {
        let _ = write!(out, "/{n}");
    }
    let _ = write!(out, " {}", m.protocol.as_str());
    match &m.formats {
        Formats::Rtp(pts) => {
            for pt in pts {
                let _ = write!(out, " {pt}");
            }
        }
        Formats::Other(tokens) => {
            for t in tokens {
                let _ = write!(out, " {t}");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    if let Some(t) = &m.title {
        line(out, b'i', t);
    }
    if let Some(c) = &m.connection {
        connection(out, c);
    }
    bandwidths(out, &m.bandwidths);
    if let Some(k) = &m.encryption_key {
        line(out, b'k', k);
    }
    for a in &m.attributes {
        attribute(out, a);
    }
}

impl SessionDescription {
    /// Appends the canonical form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"v=0\r\n");
        let o = &self.origin;
        let _ = write!(
            out,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.addr_type.as_str(),
            o.address
        );
        line(out, b's', &self.session_name);
        if let Some(i) = &self.information {
            line(out, b'i', i);
        }
        if let Some(u) = &self.uri {
            line(out, b'u', u);
        }
        for e in &self.emails {
            line(out, b'e', e);
        }
        for p in &self.phones {
            line(out, b'p', p);
        }
        if let Some(c) = &self.connection {
            connection(out, c);
        }
        bandwidths(out, &self.bandwidths);
        for t in &self.timing {
            let _ = write!(out, "t={} {}\r\n", t.start, t.stop);
            for r in &t.repeats {
                line(out, b'r', r);
            }
        }
        if let Some(z) = &self.time_zones {
            line(out, b'z', z);
        }
        if let Some(k) = &self.encryption_key {
            line(out, b'k', k);
        }
        for a in &self.attributes {
            attribute(out, a);
        }
        for m in &self.media {
            media(out, m);
        }
    }
}
