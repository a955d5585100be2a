//! Knowledge base: documents chunked and embedded, top-k retrieval.
//!
//! A [`Document`] is cut into passages ([`chunk`]): markdown headings (and
//! bare title lines of plain text) start sections, blank lines paragraphs.
//! A section's paragraphs are packed into passages of at most
//! [`ChunkConfig::max_words`]; a longer paragraph becomes windows of whole
//! sentences that overlap by [`ChunkConfig::overlap_sentences`], so an answer
//! spanning a window edge is whole in one of them. Each passage is embedded
//! with its heading in front ("Opening hours. We are open ..."), because FAQ
//! answers often only make sense under their question. A
//! [`KnowledgeBase`] answers [`Retriever::search`] with the passages most
//! similar (cosine) to the question.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::embed::{cosine, EmbedError, Embedder};

/// A source document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    /// Where it came from (file name, URL, title).
    pub source: String,
    /// Its text.
    pub text: String,
}

/// A retrieved passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The document it came from.
    pub source: String,
    /// The passage.
    pub text: String,
    /// Similarity to the query, -1..=1.
    pub score: f32,
}

/// Finds passages relevant to a question.
pub trait Retriever: Send + Sync + Debug {
    /// The best `k` passages for `query`, best first.
    fn search(&self, query: &str, k: usize) -> Vec<Passage>;
}

/// Only the passages scoring at least `min` (order kept): what to do with
/// [`Retriever::search`] results before quoting them to a caller.
pub fn min_score(passages: Vec<Passage>, min: f32) -> Vec<Passage> {
    passages.into_iter().filter(|p| p.score >= min).collect()
}

/// Errors building a knowledge base.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KbError {
    /// A folder or file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A chunking setting is out of range.
    #[error("chunk setting {name} = {value} is out of range ({range})")]
    Config {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The allowed range.
        range: &'static str,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// How documents are cut into passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Longest passage in words (a paragraph longer than this is split).
    pub max_words: usize,
    /// Sentences repeated at the start of the next window of a split paragraph.
    pub overlap_sentences: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_words: 90,
            overlap_sentences: 1,
        }
    }
}

impl ChunkConfig {
    fn validate(&self) -> Result<(), KbError> {
        if self.max_words < 8 {
            return Err(KbError::Config {
                name: "max_words",
                value: self.max_words,
                range: ">= 8",
            });
        }
        Ok(())
    }
}

/// A passage of a document, before embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The document's source.
    pub source: String,
    /// The headings it sits under, outermost first, joined with " / ".
    pub heading: Option<String>,
    /// The passage.
    pub text: String,
}

impl Chunk {
    /// What is embedded: the heading, then the text.
    pub fn embedding_text(&self) -> String {
        match &self.heading {
            Some(h) => format!("{h}. {}", self.text),
            None => self.text.clone(),
        }
    }
}

/// Cut `doc` into passages (see the module docs).
pub fn chunk(doc: &Document, config: ChunkConfig) -> Vec<Chunk> {
    let max_words = config.max_words.max(8);
    let mut out = Vec::new();
    // Heading stack: (level, text).
    let mut headings: Vec<(usize, String)> = Vec::new();
    // The current section's paragraphs, and the current paragraph's lines.
    let mut section: Vec<String> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();

    let end_paragraph = |paragraph: &mut Vec<&str>,
                         section: &mut Vec<String>,
                         headings: &mut Vec<(usize, String)>,
                         out: &mut Vec<Chunk>| {
        if paragraph.is_empty() {
            return;
        }
        let text = paragraph.join(" ");
        paragraph.clear();
        if paragraph_is_title(&text) {
            // A bare title line (plain-text documents): a heading below
            // any markdown ones.
            flush_section(doc, section, headings, max_words, config, out);
            headings.retain(|(l, _)| *l < PLAIN_TITLE_LEVEL);
            headings.push((PLAIN_TITLE_LEVEL, text));
        } else {
            section.push(text);
        }
    };

    for line in doc.text.lines() {
        let trimmed = line.trim();
        if let Some((level, title)) = markdown_heading(trimmed) {
            end_paragraph(&mut paragraph, &mut section, &mut headings, &mut out);
            flush_section(doc, &mut section, &headings, max_words, config, &mut out);
            headings.retain(|(l, _)| *l < level);
            headings.push((level, title.to_string()));
        } else if trimmed.is_empty() {
            end_paragraph(&mut paragraph, &mut section, &mut headings, &mut out);
        } else {
            // List items read as sentences of their paragraph.
            let item = trimmed
                .strip_prefix("- ")
                .or_else(|| trimmed.strip_prefix("* "))
                .unwrap_or(trimmed);
            paragraph.push(item);
        }
    }
    end_paragraph(&mut paragraph, &mut section, &mut headings, &mut out);
    flush_section(doc, &mut section, &headings, max_words, config, &mut out);
    out
}

/// The heading level given to bare title lines of plain text.
const PLAIN_TITLE_LEVEL: usize = 7;

/// A one-line paragraph of a few words with no closing punctuation.
fn paragraph_is_title(text: &str) -> bool {
    let words = text.split_whitespace().count();
    (1..=8).contains(&words) && !text.ends_with(['.', '!', '?', ':', ';', ','])
}

/// Pack the section's paragraphs into passages of at most `max_words`
/// (a longer paragraph becomes sentence windows) and clear it.
fn flush_section(
    doc: &Document,
    section: &mut Vec<String>,
    headings: &[(usize, String)],
    max_words: usize,
    config: ChunkConfig,
    out: &mut Vec<Chunk>,
) {
    if section.is_empty() {
        return;
    }
    let heading = (!headings.is_empty()).then(|| {
        headings
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    });
    let push = |text: String, out: &mut Vec<Chunk>| {
        out.push(Chunk {
            source: doc.source.clone(),
            heading: heading.clone(),
            text,
        })
    };
    let words = |s: &str| s.split_whitespace().count();
    let mut packed: Vec<&str> = Vec::new();
    let mut n = 0;
    for p in section.iter() {
        let w = words(p);
        if !packed.is_empty() && n + w > max_words {
            push(packed.join(" "), out);
            packed.clear();
            n = 0;
        }
        if w > max_words {
            for window in windows(p, max_words, config.overlap_sentences) {
                push(window, out);
            }
        } else {
            packed.push(p);
            n += w;
        }
    }
    if !packed.is_empty() {
        push(packed.join(" "), out);
    }
    section.clear();
}

/// `## Title` -> (2, "Title").
fn markdown_heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &line[level..];
    if !rest.starts_with(' ') {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then_some((level, title))
}

/// The first sentence of `text` (all of it when it has one).
pub fn first_sentence(text: &str) -> &str {
    sentences(text).first().copied().unwrap_or("")
}

/// Sentences of `text`: cut after `.`, `!` or `?` followed by a space.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
            let s = text[start..=i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + 1;
        }
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Windows of whole sentences of at most `max_words` words (a single longer
/// sentence is its own window), overlapping by `overlap` sentences.
fn windows(text: &str, max_words: usize, overlap: usize) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().count();
    if words(text) <= max_words {
        return vec![text.to_string()];
    }
    let sents = sentences(text);
    let mut out = Vec::new();
    let mut start = 0;
    while start < sents.len() {
        let mut end = start;
        let mut n = 0;
        while end < sents.len() && (end == start || n + words(sents[end]) <= max_words) {
            n += words(sents[end]);
            end += 1;
        }
        out.push(sents[start..end].join(" "));
        if end >= sents.len() {
            break;
        }
        // Step back by the overlap, but always move forward.
        start = end.saturating_sub(overlap).max(start + 1);
    }
    out
}

/// Read every `.md` and `.txt` file in `dir` (not recursive), sorted by
/// name; a document's source is its file name.
pub fn load_documents(dir: &Path) -> Result<Vec<Document>, KbError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KbError::Read { path, source }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let path = entry.map_err(read_err(dir))?.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("txt"));
        if wanted && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut docs = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(read_err(&path))?;
        let text = String::from_utf8(bytes).map_err(|_| KbError::NotText { path: path.clone() })?;
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        docs.push(Document { source, text });
    }
    Ok(docs)
}

/// Embedded passages of a set of documents.
#[derive(Debug)]
pub struct KnowledgeBase {
    embedder: Arc<Embedder>,
    chunks: Vec<Chunk>,
    vectors: Vec<Vec<f32>>,
}

/// Passages embedded per batch while building (similar lengths, bounded memory).
const BATCH: usize = 16;

impl KnowledgeBase {
    /// Chunk and embed `docs` with the default [`ChunkConfig`].
    pub fn new(embedder: Arc<Embedder>, docs: &[Document]) -> Result<Self, KbError> {
        Self::with_config(embedder, docs, ChunkConfig::default())
    }

    /// Chunk `docs` by `config` and embed the passages.
    pub fn with_config(
        embedder: Arc<Embedder>,
        docs: &[Document],
        config: ChunkConfig,
    ) -> Result<Self, KbError> {
        config.validate()?;
        let chunks: Vec<Chunk> = docs.iter().flat_map(|d| chunk(d, config)).collect();
        let texts: Vec<String> = chunks.iter().map(Chunk::embedding_text).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            vectors.extend(embedder.embed_batch(batch)?);
        }
        Ok(KnowledgeBase {
            embedder,
            chunks,
            vectors,
        })
    }

    /// Load every `.md`/`.txt` file of `dir` ([`load_documents`]) and embed it.
    pub fn from_dir(embedder: Arc<Embedder>, dir: &Path) -> Result<Self, KbError> {
        Self::new(embedder, &load_documents(dir)?)
    }

    /// The passages, in document order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// How many passages.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// No passages at all.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The best `k` passages for `query`, best first, or why it failed.
    pub fn try_search(&self, query: &str, k: usize) -> Result<Vec<Passage>, KbError> {
        if k == 0 || self.chunks.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.embedder.embed(query)?;
        Ok(self.search_embedding(&q, k))
    }

    /// The best `k` passages for an already-embedded query.
    pub fn search_embedding(&self, query: &[f32], k: usize) -> Vec<Passage> {
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, cosine(query, v)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
            .into_iter()
            .take(k)
            .map(|(i, score)| Passage {
                source: self.chunks[i].source.clone(),
                text: self.chunks[i].text.clone(),
                score,
            })
            .collect()
    }
}

impl Retriever for KnowledgeBase {
    /// As [`KnowledgeBase::try_search`]; an embedding failure is logged and
    /// finds nothing.
    fn search(&self, query: &str, k: usize) -> Vec<Passage> {
        self.try_search(query, k).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "knowledge base search failed");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document {
            source: "d.md".into(),
            text: text.into(),
        }
    }

    #[test]
    fn headings_paragraphs_and_lists() {
        let d = doc("# Clinic\n\nIntro line.\n\n## Hours\nOpen 8 to 6.\nClosed Sundays.\n\n## Parking\n- Behind the building.\n- First hour free.\n\n# Other\nText.");
        let c = chunk(&d, ChunkConfig::default());
        let got: Vec<(Option<&str>, &str)> = c
            .iter()
            .map(|c| (c.heading.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("Clinic"), "Intro line."),
                (Some("Clinic / Hours"), "Open 8 to 6. Closed Sundays."),
                (
                    Some("Clinic / Parking"),
                    "Behind the building. First hour free."
                ),
                (Some("Other"), "Text."),
            ]
        );
        assert_eq!(
            c[1].embedding_text(),
            "Clinic / Hours. Open 8 to 6. Closed Sundays."
        );
        assert_eq!(markdown_heading("#hashtag"), None);
        assert_eq!(markdown_heading("### "), None);
    }

    #[test]
    fn sections_pack_paragraphs_and_plain_titles_are_headings() {
        let d = doc("Shipping\n\nFirst paragraph here.\n\nSecond one.\n\nReturns\n\nThird.");
        let c = chunk(&d, ChunkConfig::default());
        let got: Vec<(Option<&str>, &str)> = c
            .iter()
            .map(|c| (c.heading.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("Shipping"), "First paragraph here. Second one."),
                (Some("Returns"), "Third."),
            ]
        );
        // Paragraphs that do not fit together are separate passages.
        let c = chunk(
            &doc("# T\n\none two three four five six seven.\n\neight nine ten eleven twelve."),
            ChunkConfig {
                max_words: 8,
                overlap_sentences: 0,
            },
        );
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn long_paragraphs_become_overlapping_windows() {
        let s: Vec<String> = (0..6)
            .map(|i| format!("Sentence {i} has five words."))
            .collect();
        let text = s.join(" ");
        let w = windows(&text, 10, 1);
        assert_eq!(
            w,
            vec![
                format!("{} {}", s[0], s[1]),
                format!("{} {}", s[1], s[2]),
                format!("{} {}", s[2], s[3]),
                format!("{} {}", s[3], s[4]),
                format!("{} {}", s[4], s[5]),
            ]
        );
        // No overlap: disjoint windows. A sentence longer than the limit stands alone.
        assert_eq!(windows(&text, 10, 0).len(), 3);
        let long = format!("{}. Short one.", "word ".repeat(20).trim());
        assert_eq!(windows(&long, 8, 1).len(), 2);
        // Overlap larger than a window still moves forward.
        assert_eq!(windows(&text, 10, 5).len(), 5);
    }

    #[test]
    fn empty_and_odd_input() {
        assert!(chunk(&doc(""), ChunkConfig::default()).is_empty());
        assert!(chunk(&doc("\n\n# Only a heading\n\n"), ChunkConfig::default()).is_empty());
        assert_eq!(sentences("No stop at the end"), vec!["No stop at the end"]);
        assert_eq!(sentences("3.5 euros. Done!"), vec!["3.5 euros.", "Done!"]);
        assert!(matches!(
            ChunkConfig {
                max_words: 2,
                overlap_sentences: 0
            }
            .validate(),
            Err(KbError::Config { .. })
        ));
    }

    #[test]
    fn min_score_filters() {
        let p = |score| Passage {
            source: "s".into(),
            text: "t".into(),
            score,
        };
        let kept = min_score(vec![p(0.9), p(0.2), p(0.5)], 0.5);
        assert_eq!(kept.iter().map(|p| p.score).collect::<Vec<_>>(), [0.9, 0.5]);
    }

    #[test]
    fn loading_reads_md_and_txt_only() {
        let dir = std::env::temp_dir().join(format!("vocelio-kb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.md"), "# B\ntext").unwrap();
        std::fs::write(dir.join("a.txt"), "plain").unwrap();
        std::fs::write(dir.join("c.json"), "{}").unwrap();
        std::fs::write(dir.join("d.md"), [0xff, 0xfe]).unwrap();
        let err = load_documents(&dir).unwrap_err();
        assert!(matches!(err, KbError::NotText { .. }), "{err}");
        std::fs::remove_file(dir.join("d.md")).unwrap();
        let docs = load_documents(&dir).unwrap();
        assert_eq!(
            docs.iter().map(|d| d.source.as_str()).collect::<Vec<_>>(),
            ["a.txt", "b.md"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            load_documents(Path::new("/nonexistent/kb")),
            Err(KbError::Read { .. })
        ));
    }
}
