//! Turn-taking: Silero VAD with per-call state, and the endpointer that
//! decides when the caller has finished (or is talking over the agent).
//!
//! [`VadModel`] is one ONNX session serving many calls: each call keeps its
//! own [`VadState`] (Silero's recurrent state and 64-sample context, 3.3 KB)
//! and lends it to the model for each window, so a scheduler thread needs one
//! session however many calls it drives (both live in [`crate::vad`]).
//!
//! [`Endpointer`] is sans-IO: it takes one speech probability per 32 ms window
//! with the window's end on the media clock, and reports what happened.
//!
//! ## Two-stage end of turn
//! A fixed silence threshold is either slow (everyone waits ~800 ms) or cuts
//! people off at the pauses inside phone numbers ("five five five, one two
//! three"). So after [`EndpointConfig::pause_ms`] of silence the runner
//! transcribes the utterance speculatively; if the text reads as finished the
//! turn ends right there, and if it ends mid-thought (a digit, "is", "and", a
//! trailing comma; see [`looks_unfinished`]) the runner waits for
//! [`EndpointConfig::end_silence_ms`]. Speech in between cancels both.

use vocelio_codecs::MediaTime;

pub use crate::vad::{VadModel, VadState, WINDOW};

/// Milliseconds per window.
pub const WINDOW_MS: u32 = 32;

/// Per-agent turn-taking settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// Probability at which speech starts (Silero's usual 0.5).
    pub threshold: f32,
    /// Probability below which silence counts (hysteresis).
    pub neg_threshold: f32,
    /// Utterances with less speech than this are ignored (clicks, breaths).
    pub min_speech_ms: u32,
    /// Silence after which the utterance is transcribed and, if it reads as
    /// finished, the turn ends.
    pub pause_ms: u32,
    /// Silence after which the turn ends whatever the words.
    pub end_silence_ms: u32,
    /// A turn this long is ended even if the caller keeps talking.
    pub max_utterance_ms: u32,
    /// Sustained caller speech that interrupts the agent.
    pub barge_in_ms: u32,
    /// Audio kept from before the detected onset (Silero reacts a window late).
    pub pre_roll_ms: u32,
    /// Silence kept after the last speech in the audio sent to whisper.
    pub tail_ms: u32,
    /// Partial transcripts at most this often, in ms of new speech (0 = none).
    pub partial_every_ms: u32,
    /// DTMF entry ends this long after the last key (`#` ends it at once).
    pub dtmf_timeout_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 200,
            pause_ms: 350,
            end_silence_ms: 1000,
            max_utterance_ms: 15_000,
            barge_in_ms: 64,
            pre_roll_ms: 300,
            tail_ms: 160,
            partial_every_ms: 1000,
            dtmf_timeout_ms: 2000,
        }
    }
}

/// Errors in an [`EndpointConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointConfigError {
    /// Thresholds must satisfy 0 < neg_threshold <= threshold < 1.
    #[error("VAD thresholds must satisfy 0 < neg_threshold ({neg}) <= threshold ({pos}) < 1")]
    Thresholds {
        /// `threshold`.
        pos: f32,
        /// `neg_threshold`.
        neg: f32,
    },
    /// `pause_ms` must not exceed `end_silence_ms`.
    #[error("pause_ms ({pause_ms}) must not exceed end_silence_ms ({end_silence_ms})")]
    PauseAfterEnd {
        /// The speculative pause.
        pause_ms: u32,
        /// The hard end.
        end_silence_ms: u32,
    },
    /// Whisper takes at most 30 s.
    #[error("max_utterance_ms ({actual}) must be between 1000 and 29000")]
    MaxUtterance {
        /// The value given.
        actual: u32,
    },
}

impl EndpointConfig {
    /// Check the settings.
    pub fn validate(&self) -> Result<(), EndpointConfigError> {
        if !(self.neg_threshold > 0.0
            && self.neg_threshold <= self.threshold
            && self.threshold < 1.0)
        {
            return Err(EndpointConfigError::Thresholds {
                pos: self.threshold,
                neg: self.neg_threshold,
            });
        }
        if self.pause_ms > self.end_silence_ms {
            return Err(EndpointConfigError::PauseAfterEnd {
                pause_ms: self.pause_ms,
                end_silence_ms: self.end_silence_ms,
            });
        }
        if !(1000..=29_000).contains(&self.max_utterance_ms) {
            return Err(EndpointConfigError::MaxUtterance {
                actual: self.max_utterance_ms,
            });
        }
        Ok(())
    }

    fn windows(ms: u32) -> u32 {
        ms.div_ceil(WINDOW_MS).max(1)
    }
}

/// What the endpointer noticed in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech started; `onset` is the start of its first window.
    SpeechStart {
        /// Start of the first speech window.
        onset: MediaTime,
    },
    /// Speech has lasted [`EndpointConfig::barge_in_ms`] (once per utterance).
    Sustained {
        /// When it started.
        onset: MediaTime,
    },
    /// [`EndpointConfig::pause_ms`] of silence: transcribe speculatively.
    Pause {
        /// End of the last speech window.
        last_speech: MediaTime,
    },
    /// Speech again after a [`VadEvent::Pause`]: the speculative transcript is stale.
    Resumed,
    /// [`EndpointConfig::end_silence_ms`] of silence or the maximum length: the turn is over.
    End {
        /// End of the last speech window.
        last_speech: MediaTime,
        /// Ended by [`EndpointConfig::max_utterance_ms`].
        forced: bool,
    },
    /// The utterance was too short to count; forget it.
    Discarded,
}

/// Turns per-window speech probabilities into turn-taking events.
#[derive(Debug, Clone)]
pub struct Endpointer {
    cfg: EndpointConfig,
    in_speech: bool,
    onset: MediaTime,
    speech_windows: u32,
    run: u32,
    sustained: bool,
    silent_windows: u32,
    last_speech: MediaTime,
    paused: bool,
    total_windows: u32,
}

impl Endpointer {
    /// An endpointer with `cfg`.
    pub fn new(cfg: EndpointConfig) -> Self {
        Endpointer {
            cfg,
            in_speech: false,
            onset: MediaTime::ZERO,
            speech_windows: 0,
            run: 0,
            sustained: false,
            silent_windows: 0,
            last_speech: MediaTime::ZERO,
            paused: false,
            total_windows: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// In an utterance (speech, or the silence after it before the turn ends).
    pub fn in_utterance(&self) -> bool {
        self.in_speech
    }

    /// Whether the latest window was speech.
    pub fn speaking(&self) -> bool {
        self.in_speech && self.silent_windows == 0
    }

    /// Speech so far in this utterance, in ms.
    pub fn speech_ms(&self) -> u32 {
        self.speech_windows * WINDOW_MS
    }

    /// Feed the probability of the window ending at `end`.
    pub fn push(&mut self, prob: f32, end: MediaTime) -> Option<VadEvent> {
        let start =
            MediaTime::from_micros(end.as_micros().saturating_sub(u64::from(WINDOW_MS) * 1000));
        let c = self.cfg;
        if !self.in_speech {
            if prob < c.threshold {
                return None;
            }
            *self = Endpointer {
                in_speech: true,
                onset: start,
                speech_windows: 1,
                run: 1,
                last_speech: end,
                total_windows: 1,
                ..Endpointer::new(c)
            };
            return Some(VadEvent::SpeechStart { onset: start });
        }
        self.total_windows += 1;
        let speech = if self.silent_windows == 0 {
            prob >= c.neg_threshold
        } else {
            prob >= c.threshold
        };
        if speech {
            self.speech_windows += 1;
            self.run += 1;
            self.last_speech = end;
            self.silent_windows = 0;
            if self.total_windows >= EndpointConfig::windows(c.max_utterance_ms) {
                self.in_speech = false;
                return Some(VadEvent::End {
                    last_speech: end,
                    forced: true,
                });
            }
            if !self.sustained && self.run >= EndpointConfig::windows(c.barge_in_ms) {
                self.sustained = true;
                return Some(VadEvent::Sustained { onset: self.onset });
            }
            if self.paused {
                self.paused = false;
                return Some(VadEvent::Resumed);
            }
            return None;
        }
        self.run = 0;
        self.silent_windows += 1;
        let too_short = self.speech_windows < EndpointConfig::windows(c.min_speech_ms);
        if self.silent_windows >= EndpointConfig::windows(c.end_silence_ms)
            || (too_short && self.silent_windows >= EndpointConfig::windows(c.pause_ms))
        {
            self.in_speech = false;
            return Some(if too_short {
                VadEvent::Discarded
            } else {
                VadEvent::End {
                    last_speech: self.last_speech,
                    forced: false,
                }
            });
        }
        if !self.paused && !too_short && self.silent_windows >= EndpointConfig::windows(c.pause_ms)
        {
            self.paused = true;
            return Some(VadEvent::Pause {
                last_speech: self.last_speech,
            });
        }
        None
    }
}

/// A number word a caller reads digits with: "zero" to "ninety" (the same
/// words flows parse numbers from), "oh" and "hundred".
fn is_number_word(w: &str) -> bool {
    crate::brain::flow::collect::small_number(w).is_some() || matches!(w, "oh" | "hundred")
}

/// Words a finished sentence rarely ends with.
const DANGLING: [&str; 35] = [
    "and", "or", "but", "because", "is", "are", "was", "my", "your", "the", "a", "an", "to", "of",
    "for", "at", "on", "in", "with", "from", "um", "uh", "er", "like", "if", "then", "that",
    "it's", "i'm", "i", "number", "is,", "be", "about", "into",
];

/// Whether a transcript reads as cut off mid-thought: it ends in a digit or
/// number word (phone and account numbers come in groups with pauses), a
/// word sentences do not end with, a comma, dash or ellipsis, or is empty.
pub fn looks_unfinished(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || t.ends_with(',') || t.ends_with('-') || t.ends_with("...") {
        return true;
    }
    let last = t
        .split_whitespace()
        .last()
        .unwrap_or("")
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    last.chars().last().is_some_and(|c| c.is_ascii_digit())
        || is_number_word(&last)
        || DANGLING.contains(&last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ep: &mut Endpointer, probs: &[f32], t0: u64) -> Vec<(u64, VadEvent)> {
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| {
                let end_ms = t0 + (i as u64 + 1) * 32;
                ep.push(p, MediaTime::from_micros(end_ms * 1000))
                    .map(|e| (end_ms, e))
            })
            .collect()
    }

    #[test]
    fn pause_then_end_with_barge_in_once() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        let mut p = vec![0.9; 20];
        p.extend([0.05; 40]);
        let ev = feed(&mut ep, &p, 0);
        let kinds: Vec<_> = ev.iter().map(|(_, e)| *e).collect();
        let ms = |v: u64| MediaTime::from_micros(v * 1000);
        assert_eq!(
            kinds,
            vec![
                VadEvent::SpeechStart { onset: ms(0) },
                VadEvent::Sustained { onset: ms(0) },
                VadEvent::Pause {
                    last_speech: ms(640)
                },
                VadEvent::End {
                    last_speech: ms(640),
                    forced: false
                },
            ]
        );
        // Pause after 11 silent windows (352 ms), end after 32 (1024 ms).
        assert_eq!(ev[2].0, 640 + 11 * 32);
        assert_eq!(ev[3].0, 640 + 32 * 32);
    }

    #[test]
    fn speech_after_a_pause_resumes_and_clicks_are_discarded() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        let mut p = vec![0.9; 10];
        p.extend([0.05; 12]);
        p.extend([0.9; 3]);
        let kinds: Vec<_> = feed(&mut ep, &p, 0).into_iter().map(|(_, e)| e).collect();
        assert!(kinds.contains(&VadEvent::Resumed), "{kinds:?}");
        assert!(ep.in_utterance());

        let mut ep = Endpointer::new(EndpointConfig::default());
        let mut p = vec![0.9; 2];
        p.extend([0.05; 20]);
        let kinds: Vec<_> = feed(&mut ep, &p, 0).into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            kinds.last(),
            Some(&VadEvent::Discarded),
            "a 64 ms click is not a turn: {kinds:?}"
        );
    }

    #[test]
    fn long_speech_is_forced_to_end() {
        let cfg = EndpointConfig {
            max_utterance_ms: 1000,
            ..EndpointConfig::default()
        };
        let mut ep = Endpointer::new(cfg);
        let kinds: Vec<_> = feed(&mut ep, &[0.9; 40], 0)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert!(
            kinds
                .iter()
                .any(|k| matches!(k, VadEvent::End { forced: true, .. })),
            "{kinds:?}"
        );
        assert!(EndpointConfig::default().validate().is_ok());
        assert!(cfg.validate().is_ok());
        assert!(EndpointConfig {
            pause_ms: 2000,
            ..cfg
        }
        .validate()
        .is_err());
    }

    #[test]
    fn unfinished_transcripts() {
        for t in [
            "My phone number is 555",
            "My phone number is five five five,",
            "I want to",
            "um",
            "",
            "My account number is",
        ] {
            assert!(looks_unfinished(t), "{t:?}");
        }
        for t in [
            "Yes, that works for me.",
            "No, I don't think so.",
            "Sorry, wait, can I ask something?",
            "I would like to book an appointment for next Tuesday.",
        ] {
            assert!(!looks_unfinished(t), "{t:?}");
        }
    }
}
