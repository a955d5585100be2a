//! Payload decoders behind the jitter buffer, each with packet-loss
//! concealment.
//!
//! The jitter buffer hands a [`FrameDecoder`] one RTP payload at a time and
//! asks it to conceal whatever audio is missing. Every implementation works
//! in buffers sized at construction: decoding and concealment never allocate.

use vocelio_codecs::g711::Law;
use vocelio_codecs::opus::{OpusDecoder, OpusError};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

/// Errors from decoding one payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload decodes to more samples than the output slice holds.
    #[error("payload decodes to {needed} samples but the output holds {capacity}")]
    OutputTooSmall {
        /// Samples the payload decodes to.
        needed: usize,
        /// Room in the output slice.
        capacity: usize,
    },
    /// A payload with no bytes in it.
    #[error("empty payload")]
    Empty,
    /// libopus rejected the packet (corrupt, or not one 20 ms frame).
    #[error("opus: {0}")]
    Opus(#[from] OpusError),
}

/// Decodes RTP payloads to mono PCM and conceals lost ones.
pub trait FrameDecoder {
    /// The RTP clock rate, which is also the rate of the PCM produced.
    fn clock_rate(&self) -> u32;

    /// Decode one payload into the front of `out`; returns the samples written.
    ///
    /// `out` is sized by the caller and must hold the whole packet.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, DecodeError>;

    /// Fill all of `out` with loss concealment continuing the last good audio;
    /// returns `out.len()`.
    fn conceal(&mut self, out: &mut [i16]) -> usize;

    /// Forget all history (call on a new stream, e.g. an SSRC change).
    fn reset(&mut self) {}
}

/// G.711 clock rate (RFC 3551).
const G711_RATE: u32 = 8_000;
/// Good audio kept for concealment: 35 ms at 8 kHz (20 ms window + 15 ms lag).
const G711_HISTORY: usize = 280;
/// Shortest and longest repeated period: 5 ms (200 Hz) to 15 ms (66 Hz).
const PITCH_MIN: usize = 40;
const PITCH_MAX: usize = 120;
/// The default period when no pitch is found: the last 10 ms.
const PITCH_DEFAULT: usize = 80;
/// Samples in 10 ms at 8 kHz: the attenuation step.
const TEN_MS: u32 = 80;
/// After this many concealed samples (60 ms) the output is silence.
const G711_CONCEAL_MAX: u32 = 480;
/// Cross-fade from concealment back to real audio: 4 ms.
const G711_FADE_IN: usize = 32;

/// G.711 decoder with a G.711 Appendix I-style concealment.
///
/// Concealment repeats the last pitch period of good audio (searched between
/// 5 and 15 ms by autocorrelation over the last 20 ms; the last 10 ms when no
/// clear pitch is found), attenuated by 3 dB per 10 ms of consecutive loss,
/// and is silent after 60 ms. The first 4 ms of real audio after a loss are
/// cross-faded with the continuing concealment so the seam does not click.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    /// The last good samples, oldest first; `history_len` of them are valid
    /// and they sit at the end of the array.
    history: [i16; G711_HISTORY],
    history_len: usize,
    /// Repeated period while concealing, and the read position in it.
    period: usize,
    phase: usize,
    /// Consecutive samples concealed so far (0 = not concealing).
    lost: u32,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn new(law: Law) -> Self {
        G711Decoder {
            law,
            history: [0; G711_HISTORY],
            history_len: 0,
            period: PITCH_DEFAULT,
            phase: 0,
            lost: 0,
        }
    }

    /// The law decoded.
    pub fn law(&self) -> Law {
        self.law
    }

    fn remember(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(G711_HISTORY);
        self.history.copy_within(n.., 0);
        self.history[G711_HISTORY - n..].copy_from_slice(&pcm[pcm.len() - n..]);
        self.history_len = (self.history_len + n).min(G711_HISTORY);
    }

    /// Autocorrelation pitch search over the last 20 ms of history.
    fn find_period(&self) -> usize {
        let window = 160;
        if self.history_len < window + PITCH_MAX {
            return PITCH_DEFAULT.min(self.history_len.max(1));
        }
        let h = &self.history;
        let end = G711_HISTORY;
        let energy: i64 = h[end - window..]
            .iter()
            .map(|&x| i64::from(x) * i64::from(x))
            .sum();
        if energy < 160 * 100 {
            return PITCH_DEFAULT;
        }
        let mut best = PITCH_DEFAULT;
        let mut best_score = 0.0f64;
        for lag in PITCH_MIN..=PITCH_MAX {
            let mut corr = 0i64;
            let mut lag_energy = 0i64;
            for i in end - window..end {
                let a = i64::from(h[i]);
                let b = i64::from(h[i - lag]);
                corr += a * b;
                lag_energy += b * b;
            }
            if corr <= 0 || lag_energy == 0 {
                continue;
            }
            let score = corr as f64 / ((energy as f64) * (lag_energy as f64)).sqrt();
            // Repeating a multiple of the true period is just as seamless, so
            // the best-correlated lag wins (the shortest on a tie).
            if score > best_score {
                best_score = score;
                best = lag;
            }
        }
        if best_score < 0.5 {
            PITCH_DEFAULT
        } else {
            best
        }
    }

    /// The next concealment sample, advancing the state.
    fn next_concealed(&mut self) -> i16 {
        if self.lost >= G711_CONCEAL_MAX || self.history_len == 0 {
            self.lost = self.lost.saturating_add(1);
            return 0;
        }
        let period = self.period.min(self.history_len);
        let x = self.history[G711_HISTORY - period + self.phase % period];
        self.phase = (self.phase + 1) % period;
        // -3 dB per 10 ms, applied smoothly per sample.
        let gain = 10f32.powf(-3.0 / 20.0 * self.lost as f32 / TEN_MS as f32);
        self.lost += 1;
        (f32::from(x) * gain) as i16
    }
}

impl FrameDecoder for G711Decoder {
    fn clock_rate(&self) -> u32 {
        G711_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::Empty);
        }
        let n = payload.len();
        if n > out.len() {
            return Err(DecodeError::OutputTooSmall {
                needed: n,
                capacity: out.len(),
            });
        }
        let pcm = &mut out[..n];
        // Same length by construction, so the law cannot fail.
        if self.law.decode(payload, pcm).is_err() {
            return Err(DecodeError::OutputTooSmall {
                needed: n,
                capacity: out.len(),
            });
        }
        if self.lost > 0 && self.lost < G711_CONCEAL_MAX {
            let fade = G711_FADE_IN.min(n);
            for (i, s) in pcm[..fade].iter_mut().enumerate() {
                let c = i32::from(self.next_concealed());
                let w = i as i32 + 1;
                let mixed = (i32::from(*s) * w + c * (fade as i32 + 1 - w)) / (fade as i32 + 1);
                *s = mixed as i16;
            }
        }
        self.lost = 0;
        self.phase = 0;
        self.remember(&out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        if self.lost == 0 {
            self.period = self.find_period();
            self.phase = 0;
        }
        for s in out.iter_mut() {
            *s = self.next_concealed();
        }
        out.len()
    }

    fn reset(&mut self) {
        *self = G711Decoder::new(self.law);
    }
}

/// Opus RTP clock rate (RFC 7587): always 48 kHz.
const OPUS_RATE: u32 = 48_000;
/// Samples in one 20 ms Opus frame at 48 kHz.
const OPUS_FRAME: usize = 960;

/// Opus at 48 kHz mono, concealing with libopus' own PLC.
///
/// The codecs crate decodes one 20 ms frame per packet, so packets of other
/// durations give [`DecodeError::Opus`] (and are concealed by the jitter
/// buffer). Concealment is produced 20 ms at a time and handed out in
/// whatever lengths `conceal` is asked for.
pub struct OpusFrameDecoder {
    inner: OpusDecoder,
    /// Scratch for decoding and for concealment not yet handed out.
    frame: AudioFrame,
    /// Concealed samples in `frame` still to hand out, from `OPUS_FRAME - pending`.
    pending: usize,
}

impl std::fmt::Debug for OpusFrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusFrameDecoder")
            .field("pending", &self.pending)
            .finish()
    }
}

impl OpusFrameDecoder {
    /// A 48 kHz mono decoder.
    pub fn new() -> Result<Self, DecodeError> {
        Ok(OpusFrameDecoder {
            inner: OpusDecoder::new(SampleRate::Hz48000)?,
            frame: AudioFrame::silent(SampleRate::Hz48000, MediaTime::ZERO),
            pending: 0,
        })
    }
}

impl FrameDecoder for OpusFrameDecoder {
    fn clock_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::Empty);
        }
        if out.len() < OPUS_FRAME {
            return Err(DecodeError::OutputTooSmall {
                needed: OPUS_FRAME,
                capacity: out.len(),
            });
        }
        self.pending = 0;
        self.inner.decode(Some(payload), &mut self.frame)?;
        out[..OPUS_FRAME].copy_from_slice(self.frame.samples());
        Ok(OPUS_FRAME)
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        let mut filled = 0;
        while filled < out.len() {
            if self.pending == 0 {
                if self.inner.decode(None, &mut self.frame).is_err() {
                    self.frame.clear();
                }
                self.pending = OPUS_FRAME;
            }
            let start = OPUS_FRAME - self.pending;
            let k = self.pending.min(out.len() - filled);
            out[filled..filled + k].copy_from_slice(&self.frame.samples()[start..start + k]);
            self.pending -= k;
            filled += k;
        }
        out.len()
    }

    fn reset(&mut self) {
        if let Ok(fresh) = OpusDecoder::new(SampleRate::Hz48000) {
            self.inner = fresh;
        }
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vocelio_codecs::opus::{OpusEncoder, MAX_PACKET};

    fn sine(n: usize, hz: f32, amp: f32, rate: f32, offset: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (offset + i) as f32 / rate;
                (amp * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn g711_decodes_like_the_law() {
        let pcm = sine(160, 440.0, 8000.0, 8000.0, 0);
        let mut wire = vec![0u8; 160];
        Law::A.encode(&pcm, &mut wire).unwrap();
        let mut expected = vec![0i16; 160];
        Law::A.decode(&wire, &mut expected).unwrap();
        let mut dec = G711Decoder::new(Law::A);
        let mut out = [0i16; 200];
        assert_eq!(dec.decode(&wire, &mut out).unwrap(), 160);
        assert_eq!(&out[..160], &expected[..]);
        assert!(matches!(
            dec.decode(&wire, &mut out[..100]),
            Err(DecodeError::OutputTooSmall {
                needed: 160,
                capacity: 100
            })
        ));
        assert!(matches!(dec.decode(&[], &mut out), Err(DecodeError::Empty)));
        assert_eq!(dec.clock_rate(), 8000);
    }

    #[test]
    fn g711_concealment_fades_and_goes_silent_after_60_ms() {
        let mut dec = G711Decoder::new(Law::Mu);
        let mut out = [0i16; 160];
        for k in 0..5 {
            let pcm = sine(160, 200.0, 10_000.0, 8000.0, k * 160);
            let mut wire = [0u8; 160];
            Law::Mu.encode(&pcm, &mut wire).unwrap();
            dec.decode(&wire, &mut out).unwrap();
        }
        let good = rms(&out);
        let mut lost = [0i16; 80];
        let mut levels = Vec::new();
        for _ in 0..8 {
            assert_eq!(dec.conceal(&mut lost), 80);
            levels.push(rms(&lost));
        }
        // First 10 ms: close to the original level, continuing the tone.
        assert!(levels[0] > good * 0.7, "{levels:?} vs {good}");
        // Each 10 ms about 3 dB (x0.71) quieter than the last.
        for w in levels[..6].windows(2) {
            let ratio = w[1] / w[0];
            assert!((0.6..0.8).contains(&ratio), "{levels:?}");
        }
        // Silent after 60 ms.
        assert_eq!(levels[6], 0.0);
        assert_eq!(levels[7], 0.0);
    }

    #[test]
    fn g711_concealment_continues_the_pitch() {
        // 250 Hz at 8 kHz = a period of 32 samples; the search finds 64 or 96
        // or 32 (all whole periods), so the repetition is seamless.
        let mut dec = G711Decoder::new(Law::Mu);
        let mut out = [0i16; 160];
        for k in 0..3 {
            let pcm = sine(160, 250.0, 8000.0, 8000.0, k * 160);
            let mut wire = [0u8; 160];
            Law::Mu.encode(&pcm, &mut wire).unwrap();
            dec.decode(&wire, &mut out).unwrap();
        }
        assert_eq!(dec.find_period() % 32, 0);
        let mut lost = [0i16; 8];
        dec.conceal(&mut lost);
        let truth = sine(8, 250.0, 8000.0, 8000.0, 480);
        for (a, b) in lost.iter().zip(&truth) {
            assert!(
                (i32::from(*a) - i32::from(*b)).abs() < 600,
                "{lost:?} {truth:?}"
            );
        }
    }

    #[test]
    fn g711_concealment_without_history_is_silence() {
        let mut dec = G711Decoder::new(Law::Mu);
        let mut out = [1i16; 160];
        dec.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn opus_decodes_and_conceals_in_any_length() {
        let mut enc = OpusEncoder::new(SampleRate::Hz48000).unwrap();
        let mut dec = OpusFrameDecoder::new().unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let mut out = [0i16; 2880];
        for k in 0..20 {
            let pcm = sine(960, 440.0, 8000.0, 48_000.0, k * 960);
            let f = AudioFrame::from_samples(SampleRate::Hz48000, MediaTime::ZERO, &pcm).unwrap();
            let len = enc.encode(&f, &mut packet).unwrap();
            assert_eq!(dec.decode(&packet[..len], &mut out).unwrap(), 960);
        }
        assert!(rms(&out[..960]) > 3000.0);
        // Concealment in odd lengths keeps continuing the tone.
        let mut lost = [0i16; 700];
        assert_eq!(dec.conceal(&mut lost), 700);
        assert!(rms(&lost) > 1000.0, "plc rms {}", rms(&lost));
        assert_eq!(dec.conceal(&mut lost[..300]), 300);
        assert!(matches!(
            dec.decode(&packet[..10], &mut out[..100]),
            Err(DecodeError::OutputTooSmall { .. })
        ));
        assert_eq!(dec.clock_rate(), 48_000);
    }
}
