//! Streaming resampling in fixed 20 ms frames.
//!
//! Every rate the engine carries has a whole number of samples in 20 ms, so
//! a synchronous FFT resampler (rubato's `Fft` with both sides fixed) turns
//! exactly one input frame into exactly one output frame. All buffers are
//! sized in [`FrameResampler::new`]; [`FrameResampler::process`] does not
//! allocate.

use crate::frame::{AudioFrame, SampleRate, MAX_FRAME_SAMPLES};
use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// The rate pairs the engine runs: wire <-> pipeline, TTS -> wire and pipeline, Opus.
pub const ENGINE_PAIRS: [(SampleRate, SampleRate); 9] = [
    (SampleRate::Hz8000, SampleRate::Hz16000),
    (SampleRate::Hz16000, SampleRate::Hz8000),
    (SampleRate::Hz22050, SampleRate::Hz8000),
    (SampleRate::Hz22050, SampleRate::Hz16000),
    (SampleRate::Hz24000, SampleRate::Hz8000),
    (SampleRate::Hz48000, SampleRate::Hz16000),
    (SampleRate::Hz16000, SampleRate::Hz48000),
    (SampleRate::Hz48000, SampleRate::Hz8000),
    (SampleRate::Hz8000, SampleRate::Hz48000),
];

/// Errors from building or running a resampler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// rubato refused the configuration.
    #[error("cannot resample {from} -> {to}: {source}")]
    Construction {
        /// Input rate.
        from: SampleRate,
        /// Output rate.
        to: SampleRate,
        /// rubato's reason.
        source: rubato::ResamplerConstructionError,
    },
    /// rubato chose chunk sizes that are not one 20 ms frame.
    #[error("resampler {from} -> {to} wants chunks of {actual_in}/{actual_out} samples, not one 20 ms frame")]
    ChunkSize {
        /// Input rate.
        from: SampleRate,
        /// Output rate.
        to: SampleRate,
        /// Input chunk rubato chose.
        actual_in: usize,
        /// Output chunk rubato chose.
        actual_out: usize,
    },
    /// The frame given is not at the resampler's input rate.
    #[error("frame is at {actual} but the resampler takes {expected}")]
    RateMismatch {
        /// The resampler's input rate.
        expected: SampleRate,
        /// The frame's rate.
        actual: SampleRate,
    },
    /// rubato failed while processing.
    #[error("resampling failed: {0}")]
    Process(#[from] rubato::ResampleError),
}

enum Inner {
    Passthrough,
    Fft(Box<Fft<f32>>),
}

/// Resamples a stream of 20 ms frames from one rate to another, one frame in, one frame out.
pub struct FrameResampler {
    from: SampleRate,
    to: SampleRate,
    inner: Inner,
    buf_in: [f32; MAX_FRAME_SAMPLES],
    buf_out: [f32; MAX_FRAME_SAMPLES],
}

impl std::fmt::Debug for FrameResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("delay", &self.delay())
            .finish()
    }
}

impl FrameResampler {
    /// A resampler from `from` to `to` (any two supported rates; equal rates pass through).
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, ResampleError> {
        let inner = if from == to {
            Inner::Passthrough
        } else {
            let fft = Fft::<f32>::new(
                from.hz() as usize,
                to.hz() as usize,
                from.samples_per_frame(),
                1,
                FixedSync::Both,
            )
            .map_err(|source| ResampleError::Construction { from, to, source })?;
            let (actual_in, actual_out) = (fft.input_frames_next(), fft.output_frames_next());
            if actual_in != from.samples_per_frame() || actual_out != to.samples_per_frame() {
                return Err(ResampleError::ChunkSize {
                    from,
                    to,
                    actual_in,
                    actual_out,
                });
            }
            Inner::Fft(Box::new(fft))
        };
        Ok(FrameResampler {
            from,
            to,
            inner,
            buf_in: [0.0; MAX_FRAME_SAMPLES],
            buf_out: [0.0; MAX_FRAME_SAMPLES],
        })
    }

    /// Input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// How many output samples the output lags the input by.
    pub fn delay(&self) -> usize {
        match &self.inner {
            Inner::Passthrough => 0,
            Inner::Fft(fft) => fft.output_delay(),
        }
    }

    /// Resample one frame. `output` takes the output rate and the input's media time.
    pub fn process(
        &mut self,
        input: &AudioFrame,
        output: &mut AudioFrame,
    ) -> Result<(), ResampleError> {
        if input.rate() != self.from {
            return Err(ResampleError::RateMismatch {
                expected: self.from,
                actual: input.rate(),
            });
        }
        output.set_rate(self.to);
        output.set_time(input.time());
        let fft = match &mut self.inner {
            Inner::Passthrough => {
                output.samples_mut().copy_from_slice(input.samples());
                return Ok(());
            }
            Inner::Fft(fft) => fft,
        };
        let n_in = input.len();
        let n_out = output.len();
        for (d, &s) in self.buf_in[..n_in].iter_mut().zip(input.samples()) {
            *d = f32::from(s) * (1.0 / 32768.0);
        }
        let adapter_in = InterleavedSlice::new(&self.buf_in[..n_in], 1, n_in).map_err(|_| {
            ResampleError::ChunkSize {
                from: self.from,
                to: self.to,
                actual_in: n_in,
                actual_out: n_out,
            }
        })?;
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.buf_out[..n_out], 1, n_out)
            .map_err(|_| ResampleError::ChunkSize {
                from: self.from,
                to: self.to,
                actual_in: n_in,
                actual_out: n_out,
            })?;
        fft.process_into_buffer(&adapter_in, &mut adapter_out, None)?;
        for (d, &s) in output.samples_mut().iter_mut().zip(&self.buf_out[..n_out]) {
            *d = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(())
    }

    /// Forget the stream so far (e.g. after a barge-in flush).
    pub fn reset(&mut self) {
        if let Inner::Fft(fft) = &mut self.inner {
            fft.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MediaTime;
    use proptest::prelude::*;

    const PAIRS: [(SampleRate, SampleRate); 9] = ENGINE_PAIRS;

    fn sine(rate: SampleRate, frame_no: usize, hz: f64, amp: f64) -> AudioFrame {
        let mut f = AudioFrame::silent(rate, MediaTime::ZERO.plus_frames(frame_no as u64));
        let n = f.len();
        let sr = f64::from(rate.hz());
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (frame_no * n + i) as f64 / sr;
            *s = (amp * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        }
        f
    }

    #[test]
    fn every_pair_builds_with_one_frame_chunks() {
        for (from, to) in PAIRS {
            let r = FrameResampler::new(from, to).unwrap();
            assert!(
                r.delay() < to.samples_per_frame() * 4,
                "{from}->{to} delay {}",
                r.delay()
            );
        }
    }

    #[test]
    fn a_tone_keeps_its_level_and_frequency() {
        for (from, to) in PAIRS {
            let mut r = FrameResampler::new(from, to).unwrap();
            let mut out = AudioFrame::silent(to, MediaTime::ZERO);
            let mut collected = Vec::new();
            for n in 0..50 {
                r.process(&sine(from, n, 1000.0, 10_000.0), &mut out)
                    .unwrap();
                assert_eq!(out.len(), to.samples_per_frame());
                if n >= 10 {
                    collected.extend_from_slice(out.samples());
                }
            }
            let rms = (collected.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
                / collected.len() as f64)
                .sqrt();
            let expected = 10_000.0 / 2f64.sqrt();
            assert!(
                (rms / expected - 1.0).abs() < 0.05,
                "{from}->{to}: rms {rms}"
            );
            // Count zero crossings: 1 kHz gives 2000 per second.
            let crossings = collected
                .windows(2)
                .filter(|w| (w[0] < 0) != (w[1] < 0))
                .count();
            let secs = collected.len() as f64 / f64::from(to.hz());
            let hz = crossings as f64 / secs / 2.0;
            assert!((hz - 1000.0).abs() < 15.0, "{from}->{to}: {hz} Hz");
        }
    }

    #[test]
    fn downsampling_removes_what_the_target_cannot_carry() {
        // 6 kHz is above 8 kHz's Nyquist limit: it must not alias into the band.
        let mut r = FrameResampler::new(SampleRate::Hz48000, SampleRate::Hz8000).unwrap();
        let mut out = AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO);
        let mut peak = 0.0f32;
        for n in 0..50 {
            r.process(&sine(SampleRate::Hz48000, n, 6000.0, 10_000.0), &mut out)
                .unwrap();
            if n > 5 {
                peak = peak.max(out.rms());
            }
        }
        assert!(peak < 100.0, "aliased energy rms {peak}");
    }

    #[test]
    fn wrong_input_rate_is_an_error() {
        let mut r = FrameResampler::new(SampleRate::Hz8000, SampleRate::Hz16000).unwrap();
        let mut out = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
        let bad = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
        assert!(matches!(
            r.process(&bad, &mut out),
            Err(ResampleError::RateMismatch { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        // Over a long stream, output length is exactly input length times the
        // rate ratio, and timestamps follow the input.
        #[test]
        fn output_length_tracks_the_rate_ratio(pair in 0usize..PAIRS.len(), frames in 1usize..400, seed in any::<u32>()) {
            let (from, to) = PAIRS[pair];
            let mut r = FrameResampler::new(from, to).unwrap();
            let mut out = AudioFrame::silent(to, MediaTime::ZERO);
            let mut total_in = 0u64;
            let mut total_out = 0u64;
            let mut x = seed;
            for n in 0..frames {
                let mut f = AudioFrame::silent(from, MediaTime::ZERO.plus_frames(n as u64));
                for s in f.samples_mut() {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *s = (x >> 16) as i16 / 4;
                }
                r.process(&f, &mut out).unwrap();
                prop_assert_eq!(out.time(), f.time());
                total_in += f.len() as u64;
                total_out += out.len() as u64;
            }
            prop_assert_eq!(total_out * u64::from(from.hz()), total_in * u64::from(to.hz()));
        }
    }
}
