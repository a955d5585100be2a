//! Fixed-size 20 ms PCM frames.

use std::fmt;

/// Duration of one media frame in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Samples in the largest frame we carry: 20 ms at 48 kHz.
pub const MAX_FRAME_SAMPLES: usize = 960;

/// The sample rates the engine moves audio at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SampleRate {
    /// Telephony narrowband (G.711, Twilio).
    Hz8000,
    /// Wideband: VAD and speech-to-text.
    Hz16000,
    /// Piper "medium" voices.
    Hz22050,
    /// Some TTS voices.
    Hz24000,
    /// Opus.
    Hz48000,
}

impl SampleRate {
    /// Every supported rate, lowest first.
    pub const ALL: [SampleRate; 5] = [
        SampleRate::Hz8000,
        SampleRate::Hz16000,
        SampleRate::Hz22050,
        SampleRate::Hz24000,
        SampleRate::Hz48000,
    ];

    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz22050 => 22_050,
            SampleRate::Hz24000 => 24_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// Samples in one 20 ms frame at this rate (exact for every supported rate).
    pub const fn samples_per_frame(self) -> usize {
        (self.hz() / (1000 / FRAME_MS)) as usize
    }

    /// Look a rate up by its value in Hz.
    pub fn from_hz(hz: u32) -> Result<SampleRate, FrameError> {
        SampleRate::ALL
            .into_iter()
            .find(|r| r.hz() == hz)
            .ok_or(FrameError::UnsupportedRate { hz })
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.hz())
    }
}

/// Position on a call's media clock, in microseconds since the stream began.
///
/// Media time is carried by the audio itself (frame counts, RTP timestamps),
/// never read from the wall clock, so latency measured in it is what the
/// caller hears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MediaTime(u64);

impl MediaTime {
    /// The start of the stream.
    pub const ZERO: MediaTime = MediaTime(0);

    /// From microseconds.
    pub const fn from_micros(us: u64) -> Self {
        MediaTime(us)
    }

    /// From a sample count at a rate (rounded down to the microsecond).
    pub const fn from_samples(samples: u64, rate: SampleRate) -> Self {
        MediaTime(samples * 1_000_000 / rate.hz() as u64)
    }

    /// Microseconds since the start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the start (rounded down).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// This time plus `frames` frames of 20 ms.
    pub const fn plus_frames(self, frames: u64) -> Self {
        MediaTime(self.0 + frames * FRAME_MS as u64 * 1000)
    }

    /// Microseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn micros_since(self, earlier: MediaTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Errors about frames and rates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A rate the engine does not carry.
    #[error("unsupported sample rate {hz} Hz (supported: 8000, 16000, 22050, 24000, 48000)")]
    UnsupportedRate {
        /// The rate asked for.
        hz: u32,
    },
    /// A slice that is not exactly one frame long.
    #[error("expected {expected} samples for a 20 ms frame, got {actual}")]
    WrongLength {
        /// Samples in a frame at this rate.
        expected: usize,
        /// Samples given.
        actual: usize,
    },
}

/// 20 ms of mono 16-bit PCM in a fixed, inline buffer.
///
/// The buffer always has room for the largest rate, so a frame never
/// allocates and can be reused for any rate. Only the first
/// [`SampleRate::samples_per_frame`] samples are meaningful.
#[derive(Clone)]
pub struct AudioFrame {
    rate: SampleRate,
    time: MediaTime,
    samples: [i16; MAX_FRAME_SAMPLES],
}

impl AudioFrame {
    /// A silent frame at `rate`, stamped `time`.
    pub const fn silent(rate: SampleRate, time: MediaTime) -> Self {
        AudioFrame {
            rate,
            time,
            samples: [0; MAX_FRAME_SAMPLES],
        }
    }

    /// A frame holding a copy of `pcm`, which must be exactly one frame long.
    pub fn from_samples(
        rate: SampleRate,
        time: MediaTime,
        pcm: &[i16],
    ) -> Result<Self, FrameError> {
        let mut frame = AudioFrame::silent(rate, time);
        frame.copy_from(pcm)?;
        Ok(frame)
    }

    /// The frame's sample rate.
    pub const fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The media time of the first sample.
    pub const fn time(&self) -> MediaTime {
        self.time
    }

    /// Restamp the frame.
    pub fn set_time(&mut self, time: MediaTime) {
        self.time = time;
    }

    /// Change the frame's rate; the samples are left as they are (re-fill them).
    pub fn set_rate(&mut self, rate: SampleRate) {
        self.rate = rate;
    }

    /// Number of samples in the frame.
    pub const fn len(&self) -> usize {
        self.rate.samples_per_frame()
    }

    /// Frames are never empty; provided for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The frame's samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples[..self.len()]
    }

    /// The frame's samples, writable.
    pub fn samples_mut(&mut self) -> &mut [i16] {
        let n = self.len();
        &mut self.samples[..n]
    }

    /// Overwrite the samples from `pcm`, which must be exactly one frame long.
    pub fn copy_from(&mut self, pcm: &[i16]) -> Result<(), FrameError> {
        let expected = self.len();
        if pcm.len() != expected {
            return Err(FrameError::WrongLength {
                expected,
                actual: pcm.len(),
            });
        }
        self.samples[..expected].copy_from_slice(pcm);
        Ok(())
    }

    /// Fill with silence.
    pub fn clear(&mut self) {
        self.samples.fill(0);
    }

    /// Root-mean-square level of the frame, 0.0 ..= 32768.0.
    pub fn rms(&self) -> f32 {
        let s = self.samples();
        let sum: f64 = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        (sum / s.len() as f64).sqrt() as f32
    }
}

impl fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioFrame")
            .field("rate", &self.rate)
            .field("time", &self.time)
            .field("samples", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rate_has_a_whole_number_of_samples_per_frame() {
        for rate in SampleRate::ALL {
            assert_eq!(rate.samples_per_frame() as u32 * 50, rate.hz(), "{rate}");
            assert!(rate.samples_per_frame() <= MAX_FRAME_SAMPLES);
        }
        assert_eq!(SampleRate::Hz22050.samples_per_frame(), 441);
    }

    #[test]
    fn from_hz_rejects_unknown_rates() {
        assert_eq!(SampleRate::from_hz(16_000), Ok(SampleRate::Hz16000));
        assert_eq!(
            SampleRate::from_hz(44_100),
            Err(FrameError::UnsupportedRate { hz: 44_100 })
        );
    }

    #[test]
    fn copy_from_checks_length() {
        let mut f = AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO);
        assert_eq!(
            f.copy_from(&[1; 161]),
            Err(FrameError::WrongLength {
                expected: 160,
                actual: 161
            })
        );
        f.copy_from(&[7; 160]).unwrap();
        assert!(f.samples().iter().all(|&s| s == 7));
        assert_eq!(f.rms(), 7.0);
    }

    #[test]
    fn media_time_arithmetic() {
        let t = MediaTime::from_samples(8000, SampleRate::Hz8000);
        assert_eq!(t.as_millis(), 1000);
        assert_eq!(t.plus_frames(3).as_millis(), 1060);
        assert_eq!(MediaTime::ZERO.micros_since(t), 0);
        assert_eq!(t.to_string(), "1.000000s");
    }
}
