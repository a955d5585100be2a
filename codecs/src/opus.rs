//! Opus (RFC 6716) for RTP (RFC 7587): 20 ms mono frames through libopus.

use crate::frame::{AudioFrame, SampleRate};
use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Channels, MutSignals};

/// The largest Opus packet we produce or accept (RFC 6716 bounds a frame at 1275 bytes).
pub const MAX_PACKET: usize = 1275;

/// Errors from Opus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpusError {
    /// Opus runs at 8, 12, 16, 24 or 48 kHz only.
    #[error("Opus cannot run at {rate}")]
    UnsupportedRate {
        /// The rate asked for.
        rate: SampleRate,
    },
    /// The frame given is at another rate than the codec was built for.
    #[error("frame is at {actual} but this Opus codec runs at {expected}")]
    RateMismatch {
        /// The codec's rate.
        expected: SampleRate,
        /// The frame's rate.
        actual: SampleRate,
    },
    /// A packet that decodes to something other than one 20 ms frame.
    #[error("Opus packet holds {actual} samples, expected one 20 ms frame of {expected}")]
    WrongDuration {
        /// Samples in a 20 ms frame.
        expected: usize,
        /// Samples the packet decoded to.
        actual: usize,
    },
    /// libopus reported an error (corrupt packet, bad argument).
    #[error("libopus: {0}")]
    Codec(#[from] audiopus::Error),
}

fn opus_rate(rate: SampleRate) -> Result<audiopus::SampleRate, OpusError> {
    Ok(match rate {
        SampleRate::Hz8000 => audiopus::SampleRate::Hz8000,
        SampleRate::Hz16000 => audiopus::SampleRate::Hz16000,
        SampleRate::Hz24000 => audiopus::SampleRate::Hz24000,
        SampleRate::Hz48000 => audiopus::SampleRate::Hz48000,
        other => return Err(OpusError::UnsupportedRate { rate: other }),
    })
}

/// A mono Opus encoder tuned for speech, one 20 ms frame per packet.
pub struct OpusEncoder {
    inner: Encoder,
    rate: SampleRate,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for frames at `rate` (8, 16, 24 or 48 kHz).
    pub fn new(rate: SampleRate) -> Result<Self, OpusError> {
        let inner = Encoder::new(opus_rate(rate)?, Channels::Mono, Application::Voip)?;
        Ok(OpusEncoder { inner, rate })
    }

    /// The rate frames must have.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Encode one frame into `out` (give it [`MAX_PACKET`] bytes); returns the packet length.
    pub fn encode(&mut self, frame: &AudioFrame, out: &mut [u8]) -> Result<usize, OpusError> {
        if frame.rate() != self.rate {
            return Err(OpusError::RateMismatch {
                expected: self.rate,
                actual: frame.rate(),
            });
        }
        Ok(self.inner.encode(frame.samples(), out)?)
    }
}

/// A mono Opus decoder producing 20 ms frames, with packet-loss concealment.
pub struct OpusDecoder {
    inner: Decoder,
    rate: SampleRate,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder producing frames at `rate` (8, 16, 24 or 48 kHz), whatever rate the sender encoded at.
    pub fn new(rate: SampleRate) -> Result<Self, OpusError> {
        let inner = Decoder::new(opus_rate(rate)?, Channels::Mono)?;
        Ok(OpusDecoder { inner, rate })
    }

    /// The rate of the frames produced.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Decode `packet` into `frame`, or conceal a lost packet when `packet` is `None`.
    ///
    /// The frame's rate is set to the decoder's; its media time is left to the caller.
    pub fn decode(
        &mut self,
        packet: Option<&[u8]>,
        frame: &mut AudioFrame,
    ) -> Result<(), OpusError> {
        frame.set_rate(self.rate);
        let expected = frame.len();
        let input = match packet {
            Some(bytes) => Some(Packet::try_from(bytes)?),
            None => None,
        };
        let output = MutSignals::try_from(frame.samples_mut())?;
        let actual = self.inner.decode(input, output, false)?;
        if actual != expected {
            return Err(OpusError::WrongDuration { expected, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MediaTime;

    fn tone(rate: SampleRate, n: usize, hz: f32) -> AudioFrame {
        let mut f = AudioFrame::silent(rate, MediaTime::ZERO);
        let sr = rate.hz() as f32;
        let len = f.len();
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (n * len + i) as f32 / sr;
            *s = (8000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16;
        }
        f
    }

    #[test]
    fn round_trip_keeps_a_tone_and_conceals_a_lost_packet() {
        for rate in [SampleRate::Hz16000, SampleRate::Hz48000] {
            let mut enc = OpusEncoder::new(rate).unwrap();
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut packet = [0u8; MAX_PACKET];
            let mut out = AudioFrame::silent(rate, MediaTime::ZERO);
            let mut energy_in = 0.0;
            let mut energy_out = 0.0;
            for n in 0..50 {
                let f = tone(rate, n, 440.0);
                let len = enc.encode(&f, &mut packet).unwrap();
                assert!(len > 0 && len < 400, "packet of {len} bytes");
                dec.decode(Some(&packet[..len]), &mut out).unwrap();
                if n >= 5 {
                    energy_in += f.rms();
                    energy_out += out.rms();
                }
            }
            let ratio = energy_out / energy_in;
            assert!((0.7..1.3).contains(&ratio), "level ratio {ratio} at {rate}");
            // A lost packet is concealed with audio continuing the tone, not silence.
            dec.decode(None, &mut out).unwrap();
            assert!(out.rms() > 1000.0, "concealment rms {}", out.rms());
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            OpusEncoder::new(SampleRate::Hz22050),
            Err(OpusError::UnsupportedRate { .. })
        ));
        let mut enc = OpusEncoder::new(SampleRate::Hz48000).unwrap();
        let f = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
        assert!(matches!(
            enc.encode(&f, &mut [0; MAX_PACKET]),
            Err(OpusError::RateMismatch { .. })
        ));
        let mut dec = OpusDecoder::new(SampleRate::Hz48000).unwrap();
        let mut out = AudioFrame::silent(SampleRate::Hz48000, MediaTime::ZERO);
        // An empty packet and garbage are errors, not panics.
        assert!(dec.decode(Some(&[]), &mut out).is_err());
        let _ = dec.decode(Some(&[0xFF; 3]), &mut out);
    }
}
