//! Cutting streamed reply text into clauses for speech synthesis.
//!
//! Text arrives in pieces (tokens, words). [`ClauseSplitter`] hands back a
//! clause as soon as it is complete, so the first one is synthesised while
//! the brain is still producing the rest. The first clause of a reply is
//! also cut at a comma, semicolon or colon (`Sure, ...`), for a fast start;
//! later ones only at sentence ends (or at a comma once they grow long).
//! Full stops that do not end a sentence are kept: abbreviations (`Dr.`,
//! `e.g.`), decimals (`3.5`), times (`10:30`), and thousands (`1,000`).

/// Titles and abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: [&str; 16] = [
    "dr", "mr", "mrs", "ms", "st", "jr", "sr", "prof", "vs", "etc", "e.g", "i.e", "no", "approx",
    "mt", "ave",
];

/// A clause longer than this (in words) is cut at the next comma.
const LONG_CLAUSE_WORDS: usize = 16;

/// Splits streamed text into clauses.
#[derive(Debug, Default, Clone)]
pub struct ClauseSplitter {
    buf: String,
    emitted: usize,
}

impl ClauseSplitter {
    /// A splitter for one reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add text; returns the clauses it completed, in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.cut_point() {
            let clause: String = self.buf.drain(..end).collect();
            let clause = clause.trim().to_string();
            self.buf = self.buf.trim_start().to_string();
            if !clause.is_empty() {
                self.emitted += 1;
                out.push(clause);
            }
        }
        out
    }

    /// The reply is complete: whatever is left is the last clause.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| {
            self.emitted += 1;
            rest.to_string()
        })
    }

    /// Byte index just past a complete clause's punctuation, if there is one.
    /// A boundary needs the character after it (whitespace) to be known.
    fn cut_point(&self) -> Option<usize> {
        let b = &self.buf;
        let chars: Vec<(usize, char)> = b.char_indices().collect();
        let mut words = 0;
        let mut in_word = false;
        for (k, &(i, c)) in chars.iter().enumerate() {
            if c.is_whitespace() {
                in_word = false;
            } else if !in_word {
                in_word = true;
                words += 1;
            }
            let next = chars.get(k + 1).map(|&(_, n)| n);
            let Some(next) = next else { break };
            if !next.is_whitespace() {
                continue;
            }
            let end = i + c.len_utf8();
            match c {
                '.' if !self.is_abbreviation(&b[..i]) => return Some(end),
                '!' | '?' => return Some(end),
                ',' | ';' | ':' => {
                    let first = self.emitted == 0;
                    if (first && words >= 1) || words >= LONG_CLAUSE_WORDS || c == ';' {
                        return Some(end);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn is_abbreviation(&self, before: &str) -> bool {
        let word = before
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .trim_start_matches(|c: char| !c.is_alphanumeric());
        let lower = word.to_lowercase();
        // Single capital letters are initials ("J. Smith").
        ABBREVIATIONS.contains(&lower.as_str())
            || (word.len() == 1 && word.chars().all(|c| c.is_uppercase()))
    }
}

/// Split a whole text at once (for greetings and tests).
pub fn split_clauses(text: &str) -> Vec<String> {
    let mut s = ClauseSplitter::new();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

/// The first `n` words of `text`.
pub fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_clause_is_short_then_sentences() {
        assert_eq!(
            split_clauses("Sure, I can help with that. Dr. Smith is free at 10:30, or at 3.5 past. Is that ok?"),
            vec![
                "Sure,",
                "I can help with that.",
                "Dr. Smith is free at 10:30, or at 3.5 past.",
                "Is that ok?"
            ]
        );
        assert_eq!(
            split_clauses("It costs 1,000 dollars, e.g. a lot"),
            vec!["It costs 1,000 dollars,", "e.g. a lot"]
        );
        assert_eq!(split_clauses("   "), Vec::<String>::new());
    }

    #[test]
    fn streaming_pieces_give_the_same_clauses() {
        let text = "Hello there! Your appointment with Dr. Jones is on Tuesday. Anything else?";
        let mut s = ClauseSplitter::new();
        let mut out = Vec::new();
        for (i, w) in text.split(' ').enumerate() {
            out.extend(s.push(&if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }));
        }
        // A clause is released only once the text after it starts.
        assert_eq!(out.len(), 2);
        out.extend(s.finish());
        assert_eq!(out, split_clauses(text));
        assert_eq!(out[0], "Hello there!");
    }

    #[test]
    fn long_clauses_break_at_commas() {
        let long = "This is the first sentence. one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen, and more words follow here.";
        let c = split_clauses(long);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(first_words("a b  c d", 2), "a b");
    }
}
