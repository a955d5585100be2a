//! Intent classification by sentence embeddings.
//!
//! An [`IntentClassifier`] embeds every example phrase of every intent once
//! (and, by default, the intent's name read as words: `cancel_appointment`
//! is the phrase "cancel appointment"). A caller turn is embedded and scored
//! against each intent, by default with a shrunk linear discriminant
//! ([`Scoring::Discriminant`]): each intent is the mean of its examples, and
//! distances are measured after down-weighting the directions in which
//! examples of one intent vary among themselves. Every intent of one agent
//! talks about the same business ("appointment" is in half of a clinic's
//! phrases); plain nearest-example cosine ([`Scoring::Nearest`]) is swayed by
//! that shared vocabulary, the discriminant much less.
//!
//! By default ([`IntentConfig::off_topic`]) the classifier also fits a
//! built-in "none of these" class from generic off-topic turns (small talk,
//! wrong numbers, sales calls, unrelated errands): a turn closest to it falls
//! back, so fallback is learned rather than only thresholded.
//!
//! The best intent wins unless its confidence is below
//! [`IntentConfig::threshold`], its lead over the runner-up is below
//! [`IntentConfig::margin`], or the turn is not even loosely similar to any of
//! its examples ([`IntentConfig::min_similarity`]); then the turn falls back
//! (`intent: None`) and the brain asks again or hands over.

use std::fmt::Debug;
use std::sync::Arc;

use super::embed::{cosine, EmbedError, Embedder};

/// An intent an agent or flow recognises.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntentDef {
    /// Its name (`book_appointment`).
    pub name: String,
    /// A few example phrases.
    pub examples: Vec<String>,
}

/// The classification of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    /// The intent, or `None` when nothing is confident enough (fallback).
    pub intent: Option<String>,
    /// The closest intent even when below the threshold.
    pub best: Option<String>,
    /// Confidence of `best`, 0..=1.
    pub confidence: f32,
}

/// Classifies caller turns against a fixed set of intents.
pub trait IntentClassify: Send + Sync + Debug {
    /// Classify `text`.
    fn classify(&self, text: &str) -> IntentMatch;
}

/// Errors building an [`IntentClassifier`] or scoring a turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntentError {
    /// No intents were given.
    #[error("no intents to classify against")]
    NoIntents,
    /// An intent has no example phrases (after dropping blank ones).
    #[error("intent {intent:?} has no example phrases")]
    NoExamples {
        /// The intent.
        intent: String,
    },
    /// Two intents share a name.
    #[error("intent {intent:?} is defined twice")]
    Duplicate {
        /// The intent.
        intent: String,
    },
    /// A setting is out of range.
    #[error("intent setting {name} = {value} is out of range ({range})")]
    Config {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f32,
        /// The allowed range.
        range: &'static str,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// How a turn is scored against the intents.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Scoring {
    /// Cosine similarity to the intent's closest examples: an intent's score
    /// is the mean of its `top_k` best (1 = nearest example only).
    /// Confidence is that cosine; the margin is a cosine difference.
    Nearest {
        /// How many of an intent's examples its score averages.
        top_k: usize,
    },
    /// Linear discriminant over the intents' mean embeddings, with the
    /// within-intent covariance shrunk towards a multiple of the identity
    /// (`shrinkage` 0 = the sample covariance, 1 = plain nearest mean).
    /// Scores are scaled by the median lead an example has over the best
    /// other intent; confidence is the softmax of the scaled scores (x3),
    /// and the margin is a scaled score difference.
    Discriminant {
        /// 0..=1 (0.7 by default).
        shrinkage: f32,
    },
}

/// How an [`IntentClassifier`] decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentConfig {
    /// How turns are scored.
    pub scoring: Scoring,
    /// Lowest confidence (0..=1) accepted as a match.
    pub threshold: f32,
    /// Least lead over the runner-up intent (in [`Scoring`]'s units); a
    /// closer call falls back.
    pub margin: f32,
    /// Lowest cosine similarity between the turn and the winning intent's
    /// closest example: a floor against turns about something else entirely.
    pub min_similarity: f32,
    /// Also use each intent's name, read as words, as an example.
    pub names_as_examples: bool,
    /// Fit a built-in off-topic class ([`OFF_TOPIC_EXAMPLES`]); a turn it
    /// wins falls back.
    pub off_topic: bool,
}

/// Generic turns that match no business intent, used as the "none" class
/// when [`IntentConfig::off_topic`] is on. Written for any call centre, not
/// for one agent's intents.
pub const OFF_TOPIC_EXAMPLES: &[&str] = &[
    "hi how are you doing today",
    "oops I meant to call someone else",
    "who am I speaking to, what company is this",
    "did you watch the football match on sunday",
    "tell me a joke",
    "I'd like to buy a new phone",
    "can you fix my car",
    "sorry the kids are being loud here",
    "this is a recorded message about your car's extended warranty",
    "what's the capital of france",
    "I love this song on the radio",
    "my washing machine is leaking",
    "just testing this line",
    "I want to order flowers for my mum",
];

impl Default for IntentConfig {
    /// Chosen on the `dev` and `test` splits of
    /// `fixtures/brain/intents.json` together (the sweep in
    /// `pipelines/tests/intents.rs` prints it); never on the held-out set
    /// `fixtures/brain/intents_holdout.json`. With the off-topic class doing
    /// most of the fallback, a low threshold and no margin do best: the
    /// old threshold and margin mostly rejected right answers.
    fn default() -> Self {
        IntentConfig {
            scoring: Scoring::Discriminant { shrinkage: 0.7 },
            threshold: 0.20,
            margin: 0.0,
            min_similarity: 0.20,
            names_as_examples: true,
            off_topic: true,
        }
    }
}

impl IntentConfig {
    fn validate(&self) -> Result<(), IntentError> {
        let unit = |name, value: f32| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(IntentError::Config {
                    name,
                    value,
                    range: "0..=1",
                })
            }
        };
        unit("threshold", self.threshold)?;
        unit("min_similarity", self.min_similarity)?;
        if !(self.margin >= 0.0 && self.margin.is_finite()) {
            return Err(IntentError::Config {
                name: "margin",
                value: self.margin,
                range: ">= 0",
            });
        }
        match self.scoring {
            Scoring::Nearest { top_k: 0 } => Err(IntentError::Config {
                name: "top_k",
                value: 0.0,
                range: ">= 1",
            }),
            Scoring::Discriminant { shrinkage } => unit("shrinkage", shrinkage),
            Scoring::Nearest { .. } => Ok(()),
        }
    }
}

/// One intent's embedded examples.
#[derive(Debug)]
struct Intent {
    name: String,
    examples: Vec<Vec<f32>>,
}

/// The fitted linear discriminant: `score_c(q) = w_c . q + b_c`, divided by
/// `scale`.
#[derive(Debug)]
struct Discriminant {
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
    scale: f32,
}

/// How sharp the discriminant's softmax is, in units of the median example lead.
const SHARPNESS: f32 = 3.0;

/// Intent classifier over sentence embeddings (see the module docs).
#[derive(Debug)]
pub struct IntentClassifier {
    embedder: Arc<Embedder>,
    intents: Vec<Intent>,
    discriminant: Option<Discriminant>,
    config: IntentConfig,
    /// How many of `intents` are the agent's; any after them is the
    /// built-in off-topic class.
    real: usize,
}

impl IntentClassifier {
    /// Embed the examples of `intents` with the default [`IntentConfig`].
    pub fn new(embedder: Arc<Embedder>, intents: &[IntentDef]) -> Result<Self, IntentError> {
        Self::with_config(embedder, intents, IntentConfig::default())
    }

    /// Embed the examples of `intents`, deciding by `config`.
    pub fn with_config(
        embedder: Arc<Embedder>,
        intents: &[IntentDef],
        config: IntentConfig,
    ) -> Result<Self, IntentError> {
        config.validate()?;
        if intents.is_empty() {
            return Err(IntentError::NoIntents);
        }
        let mut embedded: Vec<Intent> = Vec::with_capacity(intents.len());
        for def in intents {
            if embedded.iter().any(|e| e.name == def.name) {
                return Err(IntentError::Duplicate {
                    intent: def.name.clone(),
                });
            }
            let mut examples: Vec<String> = def
                .examples
                .iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
            if examples.is_empty() {
                return Err(IntentError::NoExamples {
                    intent: def.name.clone(),
                });
            }
            if config.names_as_examples {
                let words = name_as_words(&def.name);
                if !words.is_empty() {
                    examples.push(words);
                }
            }
            embedded.push(Intent {
                name: def.name.clone(),
                examples: embedder.embed_batch(&examples)?,
            });
        }
        let real = embedded.len();
        if config.off_topic {
            embedded.push(Intent {
                name: String::new(),
                examples: embedder.embed_batch(OFF_TOPIC_EXAMPLES)?,
            });
        }
        let mut classifier = IntentClassifier {
            embedder,
            real,
            intents: embedded,
            discriminant: None,
            config,
        };
        classifier.fit();
        Ok(classifier)
    }

    /// How it decides.
    pub fn config(&self) -> IntentConfig {
        self.config
    }

    /// Change how it decides. Turning [`IntentConfig::names_as_examples`]
    /// or [`IntentConfig::off_topic`] on or off needs a new classifier; they
    /// are left as they were.
    pub fn set_config(&mut self, config: IntentConfig) -> Result<(), IntentError> {
        config.validate()?;
        self.config = IntentConfig {
            names_as_examples: self.config.names_as_examples,
            off_topic: self.config.off_topic,
            ..config
        };
        self.fit();
        Ok(())
    }

    /// The names of the intents, in the order given.
    pub fn intents(&self) -> impl Iterator<Item = &str> {
        self.intents[..self.real].iter().map(|i| i.name.as_str())
    }

    /// Every intent's score for `text` (in [`Scoring`]'s units), best first.
    pub fn scores(&self, text: &str) -> Result<Vec<(String, f32)>, IntentError> {
        let query = self.embedder.embed(text)?;
        let scores = self.raw_scores(&query);
        let mut named: Vec<(String, f32)> = self.intents[..self.real]
            .iter()
            .zip(scores)
            .map(|(i, s)| (i.name.clone(), s))
            .collect();
        named.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(named)
    }

    /// Classify an already-embedded turn (an [`Embedder`] output).
    pub fn classify_embedding(&self, query: &[f32]) -> IntentMatch {
        let scores = self.raw_scores(query);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let Some(&best) = order.first() else {
            return fallback();
        };
        let lead = order
            .get(1)
            .map(|&r| scores[best] - scores[r])
            .unwrap_or(f32::INFINITY);
        let confidence = match self.config.scoring {
            Scoring::Nearest { .. } => scores[best],
            Scoring::Discriminant { .. } => {
                let total: f32 = scores
                    .iter()
                    .map(|s| ((s - scores[best]) * SHARPNESS).exp())
                    .sum();
                1.0 / total.max(1.0)
            }
        }
        .clamp(0.0, 1.0);
        if best >= self.real {
            // Off-topic: fall back, naming the closest real intent.
            let runner = order.iter().copied().find(|&i| i < self.real);
            return IntentMatch {
                intent: None,
                best: runner.map(|i| self.intents[i].name.clone()),
                confidence: 0.0,
            };
        }
        let nearest = top_k_mean(query, &self.intents[best].examples, 1);
        let accepted = confidence >= self.config.threshold
            && lead >= self.config.margin
            && nearest >= self.config.min_similarity;
        let name = &self.intents[best].name;
        IntentMatch {
            intent: accepted.then(|| name.clone()),
            best: Some(name.clone()),
            confidence,
        }
    }

    /// Each intent's score, in intent order.
    fn raw_scores(&self, query: &[f32]) -> Vec<f32> {
        match (self.config.scoring, &self.discriminant) {
            (Scoring::Discriminant { .. }, Some(d)) => d
                .weights
                .iter()
                .zip(&d.bias)
                .map(|(w, b)| (dot(w, query) + b) / d.scale)
                .collect(),
            (Scoring::Nearest { top_k }, _) => self
                .intents
                .iter()
                .map(|i| top_k_mean(query, &i.examples, top_k))
                .collect(),
            // Not fitted (cannot happen after `fit`): nearest example.
            (Scoring::Discriminant { .. }, None) => self
                .intents
                .iter()
                .map(|i| top_k_mean(query, &i.examples, 1))
                .collect(),
        }
    }

    /// Fit the discriminant when the scoring asks for one.
    fn fit(&mut self) {
        self.discriminant = match self.config.scoring {
            Scoring::Discriminant { shrinkage } => Some(fit_discriminant(&self.intents, shrinkage)),
            Scoring::Nearest { .. } => None,
        };
    }
}

/// `book_appointment` -> "book appointment".
fn name_as_words(name: &str) -> String {
    name.split(|c: char| c == '_' || c == '-' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shrunk LDA: class means `m_c`, pooled within-class covariance `S`
/// shrunk to `(1 - a) S + a (tr S / d) I`, weights `w_c = S^-1 m_c`, biases
/// `-m_c . w_c / 2`, and the scale that makes the median lead of an example
/// over the best other intent 1.
fn fit_discriminant(intents: &[Intent], shrinkage: f32) -> Discriminant {
    let d = intents
        .first()
        .and_then(|i| i.examples.first())
        .map_or(0, Vec::len);
    let means: Vec<Vec<f64>> = intents
        .iter()
        .map(|i| {
            let mut m = vec![0f64; d];
            for x in &i.examples {
                m.iter_mut().zip(x).for_each(|(m, &x)| *m += f64::from(x));
            }
            let n = i.examples.len().max(1) as f64;
            m.iter_mut().for_each(|m| *m /= n);
            m
        })
        .collect();
    let mut cov = vec![0f64; d * d];
    let mut n = 0usize;
    for (intent, mean) in intents.iter().zip(&means) {
        for x in &intent.examples {
            let r: Vec<f64> = x.iter().zip(mean).map(|(&x, m)| f64::from(x) - m).collect();
            for (i, ri) in r.iter().enumerate() {
                let row = &mut cov[i * d..(i + 1) * d];
                row.iter_mut().zip(&r).for_each(|(c, rj)| *c += ri * rj);
            }
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    cov.iter_mut().for_each(|c| *c /= n);
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d.max(1) as f64;
    let a = f64::from(shrinkage);
    // No spread at all (one example per intent): plain nearest mean.
    let (a, diag) = if trace > 1e-12 {
        (a, trace)
    } else {
        (1.0, 1.0)
    };
    cov.iter_mut().for_each(|c| *c *= 1.0 - a);
    (0..d).for_each(|i| cov[i * d + i] += a * diag);

    let chol = cholesky(&mut cov, d);
    let weights: Vec<Vec<f64>> = means
        .iter()
        .map(|m| {
            if chol {
                cholesky_solve(&cov, d, m)
            } else {
                m.clone()
            }
        })
        .collect();
    let bias: Vec<f64> = weights
        .iter()
        .zip(&means)
        .map(|(w, m)| -0.5 * w.iter().zip(m).map(|(w, m)| w * m).sum::<f64>())
        .collect();
    let weights: Vec<Vec<f32>> = weights
        .into_iter()
        .map(|w| w.into_iter().map(|x| x as f32).collect())
        .collect();
    let bias: Vec<f32> = bias.into_iter().map(|b| b as f32).collect();

    let mut leads: Vec<f32> = Vec::new();
    for (c, intent) in intents.iter().enumerate() {
        for x in &intent.examples {
            let s: Vec<f32> = weights
                .iter()
                .zip(&bias)
                .map(|(w, b)| dot(w, x) + b)
                .collect();
            let other = s
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != c)
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max);
            if other.is_finite() {
                leads.push(s[c] - other);
            }
        }
    }
    leads.sort_by(|a, b| a.total_cmp(b));
    let median = leads.get(leads.len() / 2).copied().unwrap_or(1.0);
    Discriminant {
        weights,
        bias,
        scale: if median > 1e-6 { median } else { 1.0 },
    }
}

/// In-place Cholesky factorisation of the symmetric `d x d` matrix `a`
/// (row-major) into its lower triangle. `false` if it is not positive definite.
fn cholesky(a: &mut [f64], d: usize) -> bool {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return false;
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    true
}

/// Solve `L L^T x = b` with the factor from [`cholesky`].
fn cholesky_solve(l: &[f64], d: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0f64; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * d + i];
    }
    let mut x = vec![0f64; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * d + i];
    }
    x
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Mean of the `k` highest cosine similarities of `query` to `examples`.
fn top_k_mean(query: &[f32], examples: &[Vec<f32>], k: usize) -> f32 {
    let mut sims: Vec<f32> = examples.iter().map(|e| cosine(query, e)).collect();
    sims.sort_by(|a, b| b.total_cmp(a));
    let k = k.clamp(1, sims.len().max(1));
    sims.iter().take(k).sum::<f32>() / k as f32
}

fn fallback() -> IntentMatch {
    IntentMatch {
        intent: None,
        best: None,
        confidence: 0.0,
    }
}

impl IntentClassify for IntentClassifier {
    /// Classify `text`; an embedding failure is logged and falls back.
    fn classify(&self, text: &str) -> IntentMatch {
        match self.embedder.embed(text) {
            Ok(query) => self.classify_embedding(&query),
            Err(e) => {
                tracing::warn!(error = %e, "intent classification failed; falling back");
                fallback()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::embed::normalize;

    fn intent(name: &str, examples: &[&[f32]]) -> Intent {
        Intent {
            name: name.into(),
            examples: examples
                .iter()
                .map(|e| {
                    let mut v = e.to_vec();
                    normalize(&mut v);
                    v
                })
                .collect(),
        }
    }

    #[test]
    fn cholesky_solves() {
        // [[4, 2], [2, 3]] x = [2, 1] -> x = [0.5, 0]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        assert!(cholesky(&mut a, 2));
        let x = cholesky_solve(&a, 2, &[2.0, 1.0]);
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky(&mut not_pd, 2));
    }

    #[test]
    fn discriminant_separates_examples_and_reduces_to_nearest_mean() {
        let intents = vec![
            intent("a", &[&[1.0, 0.0, 0.0], &[0.6, 0.0, 0.8]]),
            intent("b", &[&[0.0, 1.0, 0.0], &[0.0, 0.6, 0.8]]),
            intent("c", &[&[0.0, 0.0, 1.0], &[0.3, 0.3, 0.9]]),
        ];
        let score = |d: &Discriminant, q: &[f32]| -> Vec<f32> {
            d.weights
                .iter()
                .zip(&d.bias)
                .map(|(w, b)| dot(w, q) + b)
                .collect()
        };
        let argmax = |s: &[f32]| (0..s.len()).max_by(|&i, &j| s[i].total_cmp(&s[j])).unwrap();
        let d = fit_discriminant(&intents, 0.5);
        assert!(d.scale > 0.0);
        for (c, i) in intents.iter().enumerate() {
            for x in &i.examples {
                assert_eq!(argmax(&score(&d, x)), c, "{x:?}");
            }
        }
        // Shrinkage 1 is nearest class mean (Euclidean).
        let d = fit_discriminant(&intents, 1.0);
        let mut q = vec![0.5, 0.4, 0.7];
        normalize(&mut q);
        let s = score(&d, &q);
        let dist: Vec<f32> = intents
            .iter()
            .map(|i| {
                let n = i.examples.len() as f32;
                (0..3)
                    .map(|k| {
                        let m = i.examples.iter().map(|x| x[k]).sum::<f32>() / n;
                        (q[k] - m).powi(2)
                    })
                    .sum()
            })
            .collect();
        let nearest = (0..3).min_by(|&i, &j| dist[i].total_cmp(&dist[j])).unwrap();
        assert_eq!(argmax(&s), nearest, "{s:?} {dist:?}");
    }

    #[test]
    fn names_read_as_words() {
        assert_eq!(name_as_words("book_appointment"), "book appointment");
        assert_eq!(name_as_words("speak-to human"), "speak to human");
        assert_eq!(name_as_words("__"), "");
    }

    #[test]
    fn config_is_validated() {
        let bad = [
            IntentConfig {
                threshold: -0.1,
                ..IntentConfig::default()
            },
            IntentConfig {
                margin: f32::NAN,
                ..IntentConfig::default()
            },
            IntentConfig {
                scoring: Scoring::Nearest { top_k: 0 },
                ..IntentConfig::default()
            },
            IntentConfig {
                scoring: Scoring::Discriminant { shrinkage: 2.0 },
                ..IntentConfig::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(IntentError::Config { .. })),
                "{c:?}"
            );
        }
        assert!(IntentConfig::default().validate().is_ok());
    }
}
