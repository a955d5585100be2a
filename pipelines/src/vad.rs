//! Voice activity detection with Silero VAD v6 (ONNX, through `ort`).
//!
//! Silero reads 16 kHz audio in 512-sample windows (32 ms), each preceded by
//! the last 64 samples of the previous window, and carries a recurrent state.
//! [`SileroVad::push`] takes audio of any length and reports a speech
//! probability per window; [`Segmenter`] turns probabilities into speech
//! segments with hysteresis and minimum durations. No clock is read: positions
//! are sample counts.

use crate::models::{files, init_onnxruntime, onnx_session, ModelDir, ModelError};
use ort::session::Session;
use ort::value::TensorRef;

/// Samples per Silero window at 16 kHz (32 ms).
pub const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;
const RATE: i64 = 16_000;

/// Errors from voice activity detection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VadError {
    /// The model file or ONNX Runtime is missing.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// ONNX Runtime failed.
    #[error("onnx runtime: {0}")]
    Ort(#[from] ort::Error),
    /// The model does not have Silero's inputs and outputs.
    #[error("{path} is not a Silero VAD v5/v6 model: {reason}")]
    NotSilero {
        /// The model file.
        path: String,
        /// What did not match.
        reason: String,
    },
}

/// A call's Silero state: recurrent state, context and a partial window
/// (3.3 KB). Lent to a [`VadModel`] for each window, so one ONNX session can
/// serve every call of a thread.
#[derive(Clone)]
pub struct VadState {
    input: [f32; CONTEXT + WINDOW],
    state: [f32; STATE_LEN],
    pending: usize,
}

impl std::fmt::Debug for VadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadState")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Default for VadState {
    fn default() -> Self {
        VadState {
            input: [0.0; CONTEXT + WINDOW],
            state: [0.0; STATE_LEN],
            pending: 0,
        }
    }
}

/// One Silero VAD session, shared by the calls whose [`VadState`]s it is lent.
pub struct VadModel {
    session: Session,
}

impl std::fmt::Debug for VadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadModel").finish_non_exhaustive()
    }
}

impl VadModel {
    /// Load Silero from the models folder (one intra-op thread: a window is ~0.1 ms).
    pub fn load(dir: &ModelDir) -> Result<Self, VadError> {
        let path = dir.require("Silero VAD", files::SILERO_VAD)?;
        init_onnxruntime(dir)?;
        let session = onnx_session(&path, 1)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for want in ["input", "state", "sr"] {
            if !names.contains(&want) {
                return Err(VadError::NotSilero {
                    path: path.display().to_string(),
                    reason: format!("no input named {want:?} (has {names:?})"),
                });
            }
        }
        Ok(VadModel { session })
    }

    /// Feed 16 kHz PCM for the call whose state is `st`; `on_window(end, p)`
    /// runs for each completed window with the index in `pcm` just past its
    /// last sample and its speech probability.
    pub fn push(
        &mut self,
        st: &mut VadState,
        pcm_16k: &[i16],
        mut on_window: impl FnMut(usize, f32),
    ) -> Result<(), VadError> {
        for (i, &s) in pcm_16k.iter().enumerate() {
            st.input[CONTEXT + st.pending] = f32::from(s) / 32768.0;
            st.pending += 1;
            if st.pending == WINDOW {
                let p = self.infer(st)?;
                on_window(i + 1, p);
                st.pending = 0;
                // The last CONTEXT samples become the next window's context.
                st.input.copy_within(WINDOW.., 0);
            }
        }
        Ok(())
    }

    fn infer(&mut self, st: &mut VadState) -> Result<f32, VadError> {
        let input = TensorRef::from_array_view(([1usize, CONTEXT + WINDOW], &st.input[..]))?;
        let state = TensorRef::from_array_view(([2usize, 1, 128], &st.state[..]))?;
        let sr_val = [RATE];
        let sr = TensorRef::from_array_view(((), &sr_val[..]))?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])?;
        let (_, prob) = outputs["output"].try_extract_tensor::<f32>()?;
        let p = prob.first().copied().unwrap_or(0.0);
        let (_, new_state) = outputs["stateN"].try_extract_tensor::<f32>()?;
        if new_state.len() == STATE_LEN {
            st.state.copy_from_slice(new_state);
        }
        Ok(p)
    }
}

/// A Silero VAD with its own session and state: one stream, e.g. a file.
#[derive(Debug)]
pub struct SileroVad {
    model: VadModel,
    state: VadState,
    windows_done: u64,
}

impl SileroVad {
    /// Load Silero from the models folder.
    pub fn load(dir: &ModelDir) -> Result<Self, VadError> {
        Ok(SileroVad {
            model: VadModel::load(dir)?,
            state: VadState::default(),
            windows_done: 0,
        })
    }

    /// Forget everything heard so far (new call or new stream).
    pub fn reset(&mut self) {
        self.state = VadState::default();
        self.windows_done = 0;
    }

    /// Feed 16 kHz PCM; `on_window(window_index, probability)` runs for each completed 512-sample window.
    pub fn push(
        &mut self,
        pcm_16k: &[i16],
        mut on_window: impl FnMut(u64, f32),
    ) -> Result<(), VadError> {
        let done = &mut self.windows_done;
        self.model.push(&mut self.state, pcm_16k, |_, p| {
            on_window(*done, p);
            *done += 1;
        })
    }
}

/// Endpointing parameters, in samples at 16 kHz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// Probability at which speech starts.
    pub threshold: f32,
    /// Probability below which silence starts counting (hysteresis).
    pub neg_threshold: f32,
    /// Shorter bursts are dropped (clicks, breaths).
    pub min_speech: usize,
    /// Silence needed to end a segment.
    pub min_silence: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech: 16 * 250,
            min_silence: 16 * 300,
        }
    }
}

/// A speech segment: `[start, end)` in samples at 16 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
}

/// Turns per-window probabilities into speech segments.
#[derive(Debug, Clone)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    in_speech: bool,
    start: u64,
    silence_since: Option<u64>,
}

impl Segmenter {
    /// A segmenter with `cfg`.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            in_speech: false,
            start: 0,
            silence_since: None,
        }
    }

    /// Feed window `index`'s probability; returns a segment when one closes.
    pub fn push(&mut self, index: u64, prob: f32) -> Option<Segment> {
        let pos = index * WINDOW as u64;
        if !self.in_speech {
            if prob >= self.cfg.threshold {
                self.in_speech = true;
                self.start = pos;
                self.silence_since = None;
            }
            return None;
        }
        if prob >= self.cfg.threshold {
            self.silence_since = None;
            return None;
        }
        if prob < self.cfg.neg_threshold {
            let since = *self.silence_since.get_or_insert(pos);
            if pos + WINDOW as u64 - since >= self.cfg.min_silence as u64 {
                self.in_speech = false;
                let seg = Segment {
                    start: self.start,
                    end: since,
                };
                return (seg.end - seg.start >= self.cfg.min_speech as u64).then_some(seg);
            }
        }
        None
    }

    /// Close a segment still open at end of stream (`end` in samples).
    pub fn finish(&mut self, end: u64) -> Option<Segment> {
        if !self.in_speech {
            return None;
        }
        self.in_speech = false;
        let seg = Segment {
            start: self.start,
            end: self.silence_since.unwrap_or(end),
        };
        (seg.end - seg.start >= self.cfg.min_speech as u64).then_some(seg)
    }
}

/// All speech segments in a whole 16 kHz recording.
pub fn segments(
    vad: &mut SileroVad,
    pcm_16k: &[i16],
    cfg: SegmenterConfig,
) -> Result<Vec<Segment>, VadError> {
    vad.reset();
    let mut seg = Segmenter::new(cfg);
    let mut out = Vec::new();
    vad.push(pcm_16k, |i, p| out.extend(seg.push(i, p)))?;
    out.extend(seg.finish(pcm_16k.len() as u64));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(probs: &[f32]) -> Vec<Segment> {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out: Vec<Segment> = probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| s.push(i as u64, p))
            .collect();
        out.extend(s.finish((probs.len() * WINDOW) as u64));
        out
    }

    #[test]
    fn segmenter_hysteresis_and_minimums() {
        // 10 windows of silence, 20 of speech, 20 of silence.
        let mut p = vec![0.05; 10];
        p.extend([0.9; 20]);
        p.extend([0.05; 20]);
        assert_eq!(
            run(&p),
            vec![Segment {
                start: 10 * 512,
                end: 30 * 512
            }]
        );
        // A 2-window click is too short.
        let mut p = vec![0.05; 10];
        p.extend([0.9; 2]);
        p.extend([0.05; 20]);
        assert!(run(&p).is_empty());
        // A dip to 0.4 (between the thresholds) does not end speech.
        let mut p = vec![0.9; 10];
        p.extend([0.4; 20]);
        p.extend([0.9; 10]);
        assert_eq!(
            run(&p),
            vec![Segment {
                start: 0,
                end: 40 * 512
            }]
        );
    }
}
