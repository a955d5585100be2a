//! The two conversions every call runs once per 20 ms frame.
//!
//! - [`Inbound`]: a G.711 payload from the wire (RTP PCMU/PCMA, Twilio
//!   mu-law) -> 16 kHz PCM for VAD and speech-to-text.
//! - [`Outbound`]: TTS PCM at the voice's rate -> a G.711 payload for the wire.
//!
//! Both own their buffers and allocate nothing after construction
//! (`tests/no_alloc.rs` proves it with a counting allocator).

use crate::frame::{AudioFrame, MediaTime, SampleRate};
use crate::g711::{G711Error, Law};
use crate::resample::{FrameResampler, ResampleError};

/// Errors from the per-frame paths.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The payload is not one 20 ms frame of 8 kHz G.711.
    #[error(transparent)]
    G711(#[from] G711Error),
    /// Resampling failed.
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// G.711 payload -> PCM at `to` (16 kHz for the pipeline).
#[derive(Debug)]
pub struct Inbound {
    law: Law,
    narrow: AudioFrame,
    resampler: FrameResampler,
}

impl Inbound {
    /// A path decoding `law` and resampling to `to`.
    pub fn new(law: Law, to: SampleRate) -> Result<Self, TranscodeError> {
        Ok(Inbound {
            law,
            narrow: AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO),
            resampler: FrameResampler::new(SampleRate::Hz8000, to)?,
        })
    }

    /// Decode one 160-byte payload stamped `time` into `out`.
    pub fn process(
        &mut self,
        payload: &[u8],
        time: MediaTime,
        out: &mut AudioFrame,
    ) -> Result<(), TranscodeError> {
        self.narrow.set_time(time);
        self.law.decode(payload, self.narrow.samples_mut())?;
        self.resampler.process(&self.narrow, out)?;
        Ok(())
    }

    /// Output lag of the resampler, in output samples.
    pub fn delay(&self) -> usize {
        self.resampler.delay()
    }
}

/// PCM at the voice's rate -> G.711 payload.
#[derive(Debug)]
pub struct Outbound {
    law: Law,
    narrow: AudioFrame,
    resampler: FrameResampler,
}

impl Outbound {
    /// A path taking frames at `from` (22.05 kHz for Piper) to `law` at 8 kHz.
    pub fn new(from: SampleRate, law: Law) -> Result<Self, TranscodeError> {
        Ok(Outbound {
            law,
            narrow: AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO),
            resampler: FrameResampler::new(from, SampleRate::Hz8000)?,
        })
    }

    /// Convert one frame into a 160-byte payload in `out`.
    pub fn process(&mut self, frame: &AudioFrame, out: &mut [u8]) -> Result<(), TranscodeError> {
        self.resampler.process(frame, &mut self.narrow)?;
        self.law.encode(self.narrow.samples(), out)?;
        Ok(())
    }

    /// Forget queued audio state (barge-in flush).
    pub fn reset(&mut self) {
        self.resampler.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_survives_both_paths() {
        let mut outp = Outbound::new(SampleRate::Hz22050, Law::Mu).unwrap();
        let mut inp = Inbound::new(Law::Mu, SampleRate::Hz16000).unwrap();
        let mut payload = [0u8; 160];
        let mut wide = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
        let mut level = 0.0;
        for n in 0..50u64 {
            let mut f = AudioFrame::silent(SampleRate::Hz22050, MediaTime::ZERO.plus_frames(n));
            for (i, s) in f.samples_mut().iter_mut().enumerate() {
                let t = (n as f64 * 441.0 + i as f64) / 22_050.0;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16;
            }
            outp.process(&f, &mut payload).unwrap();
            inp.process(&payload, f.time(), &mut wide).unwrap();
            assert_eq!(wide.time(), f.time());
            if n > 5 {
                level += wide.rms();
            }
        }
        let mean = level / 44.0;
        let expected = 8000.0 / std::f32::consts::SQRT_2;
        assert!(
            (mean / expected - 1.0).abs() < 0.1,
            "rms {mean} vs {expected}"
        );
    }

    #[test]
    fn short_payload_is_an_error() {
        let mut inp = Inbound::new(Law::A, SampleRate::Hz16000).unwrap();
        let mut wide = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
        assert!(inp
            .process(&[0xD5; 100], MediaTime::ZERO, &mut wide)
            .is_err());
    }
}
