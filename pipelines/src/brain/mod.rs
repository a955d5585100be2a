//! The brain interface: what the agent says back.
//!
//! The runner calls [`Brain::respond`] once per caller turn with the
//! conversation so far and the new input. The brain streams its reply into a
//! [`BrainSink`]: text in any pieces (the runner cuts it into sentences and
//! clauses and sends the first to speech synthesis before the rest exists),
//! [`Action`]s, then [`BrainSink::done`]. `respond` runs on the scheduler
//! thread and must return quickly: a brain that thinks for long (an LLM)
//! hands the sink to its own thread or pool and returns at once. Chunks sent
//! for a turn the caller has since interrupted are ignored.
//!
//! Agent turns in the [`Conversation`] hold only the words the caller
//! actually heard (see the runner's barge-in handling), not whole replies.

use crossbeam_channel::Sender;
use vocelio_codecs::MediaTime;

pub mod embed;
pub mod flow;
pub mod insights;
pub mod intents;
pub mod kb;
pub mod llm;
pub mod llm_brain;
pub mod local_llm;
pub mod openai;
pub mod sentiment;
pub mod tools;

pub use insights::{CallInsights, TurnAnalysis};

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Speaker {
    /// The person on the phone.
    Caller,
    /// The AI agent.
    Agent,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who.
    pub speaker: Speaker,
    /// What: the caller's final transcript (or `DTMF 1 2 3`), or the agent
    /// words the caller heard.
    pub text: String,
    /// When it started on the call's media clock.
    pub at: MediaTime,
    /// Agent turns: the caller cut the reply off.
    pub interrupted: bool,
}

/// The conversation so far: what a brain decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The call's id.
    pub call_id: String,
    /// The agent serving it.
    pub agent: String,
    /// Turns in order.
    pub turns: Vec<Turn>,
    /// Variables the brain set with [`Action::SetVariable`], in order.
    pub variables: Vec<(String, String)>,
    /// Every action the brain asked for, in order (transfers, hang-ups,
    /// tools called): what the call's outcome is read from.
    pub actions: Vec<Action>,
}

impl Conversation {
    /// The last value set for `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A new caller turn.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnInput {
    /// The caller said something (final transcript).
    Speech {
        /// The transcript.
        text: String,
        /// When the caller started speaking.
        at: MediaTime,
    },
    /// The caller pressed keys (`#` ends entry and is not included).
    Dtmf {
        /// The digits, in order.
        digits: String,
        /// When the last key ended.
        at: MediaTime,
    },
}

impl TurnInput {
    /// The turn as conversation text.
    pub fn text(&self) -> String {
        match self {
            TurnInput::Speech { text, .. } => text.clone(),
            TurnInput::Dtmf { digits, .. } => format!("DTMF {digits}"),
        }
    }

    /// When it happened.
    pub fn at(&self) -> MediaTime {
        match self {
            TurnInput::Speech { at, .. } | TurnInput::Dtmf { at, .. } => *at,
        }
    }
}

/// Something the brain wants done besides speaking.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Hand the call to `target` (a SIP URI, number or queue name) once the
    /// reply has been played. The runtime reports it; the binary transfers.
    Transfer {
        /// Where to.
        target: String,
    },
    /// End the call once the reply has been played.
    Hangup,
    /// Send DTMF digits to the far end now (control lane).
    SendDtmf {
        /// `0-9`, `*`, `#`, `A-D`.
        digits: String,
    },
    /// Remember a value with the conversation.
    SetVariable {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// For the record: the brain called a tool or webhook (it runs tools
    /// itself; the runtime only reports this).
    Tool {
        /// The tool's name.
        name: String,
        /// Its arguments, as JSON text.
        arguments: String,
        /// Whether it answered in time with a usable result.
        ok: bool,
    },
}

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BrainChunk {
    /// More reply text (any length: a token, a word, a sentence).
    Text(String),
    /// An action.
    Action(Action),
    /// What the brain made of the caller's turn (intent, sentiment,
    /// suggested replies for a supervisor). At most one per reply.
    Analysis(TurnAnalysis),
    /// The reply is complete.
    Done,
}

/// Where a brain streams one reply. Cheap to clone; sending never blocks.
#[derive(Debug, Clone)]
pub struct BrainSink {
    reply: u32,
    tx: Sender<(u32, BrainChunk)>,
}

impl BrainSink {
    /// A sink tagging chunks with `reply` (the runner's reply number).
    pub fn new(reply: u32, tx: Sender<(u32, BrainChunk)>) -> Self {
        BrainSink { reply, tx }
    }

    /// Send a chunk. Returns `false` when the call has ended (stop working).
    pub fn send(&self, chunk: BrainChunk) -> bool {
        self.tx.send((self.reply, chunk)).is_ok()
    }

    /// Send reply text.
    pub fn text(&self, text: impl Into<String>) -> bool {
        self.send(BrainChunk::Text(text.into()))
    }

    /// Send an action.
    pub fn action(&self, action: Action) -> bool {
        self.send(BrainChunk::Action(action))
    }

    /// Report the analysis of the caller's turn.
    pub fn analysis(&self, analysis: TurnAnalysis) -> bool {
        self.send(BrainChunk::Analysis(analysis))
    }

    /// The reply is complete.
    pub fn done(&self) -> bool {
        self.send(BrainChunk::Done)
    }
}

/// Decides what the agent says.
pub trait Brain: Send {
    /// What to say when the call is answered, if anything.
    fn greeting(&self) -> Option<String> {
        None
    }

    /// Reply to `input` given `conversation` (which does not include `input`
    /// yet). Must not block: stream into `out` now, or move `out` to a worker
    /// and return. Call [`BrainSink::done`] at the end.
    fn respond(&mut self, conversation: &Conversation, input: &TurnInput, out: BrainSink);

    /// What the call came to, asked once when it ends. The default reads the
    /// conversation alone (sentiment, outcome from the actions); brains that
    /// know more (intents matched, a flow's trace) override it.
    fn insights(&self, conversation: &Conversation) -> CallInsights {
        insights::summarize(conversation, &[], Vec::new())
    }
}

/// One rule of a [`ScriptedBrain`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    keywords: Vec<String>,
    reply: String,
    actions: Vec<Action>,
}

/// A brain for tests and demos: keyword rules, a default reply, DTMF echo.
///
/// A rule matches when any of its keywords occurs in the lower-cased
/// transcript as whole words. The first matching rule wins. For DTMF turns
/// `{digits}` in the DTMF template is replaced by the digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedBrain {
    greeting: Option<String>,
    rules: Vec<Rule>,
    default_reply: String,
    dtmf_template: String,
    /// How many times it has been asked (for tests).
    pub calls: u32,
    /// Inputs it was given, in order (for tests).
    pub inputs: Vec<TurnInput>,
}

impl ScriptedBrain {
    /// A brain answering `default_reply` to everything.
    pub fn new(default_reply: impl Into<String>) -> Self {
        ScriptedBrain {
            greeting: None,
            rules: Vec::new(),
            default_reply: default_reply.into(),
            dtmf_template: "You pressed {digits}.".into(),
            calls: 0,
            inputs: Vec::new(),
        }
    }

    /// Greet the caller with `text`.
    pub fn with_greeting(mut self, text: impl Into<String>) -> Self {
        self.greeting = Some(text.into());
        self
    }

    /// Say `reply` when any of `keywords` (`|`-separated) is heard.
    pub fn on(self, keywords: &str, reply: impl Into<String>) -> Self {
        self.on_with(keywords, reply, Vec::new())
    }

    /// As [`ScriptedBrain::on`], also doing `actions`.
    pub fn on_with(
        mut self,
        keywords: &str,
        reply: impl Into<String>,
        actions: Vec<Action>,
    ) -> Self {
        self.rules.push(Rule {
            keywords: keywords
                .split('|')
                .map(normalise)
                .filter(|k| !k.is_empty())
                .collect(),
            reply: reply.into(),
            actions,
        });
        self
    }

    /// Reply to DTMF with `template` (`{digits}` is replaced).
    pub fn on_dtmf(mut self, template: impl Into<String>) -> Self {
        self.dtmf_template = template.into();
        self
    }

    fn pick(&self, input: &TurnInput) -> (String, Vec<Action>) {
        match input {
            TurnInput::Dtmf { digits, .. } => {
                (self.dtmf_template.replace("{digits}", digits), Vec::new())
            }
            TurnInput::Speech { text, .. } => {
                let heard = format!(" {} ", normalise(text));
                self.rules
                    .iter()
                    .find(|r| r.keywords.iter().any(|k| heard.contains(&format!(" {k} "))))
                    .map(|r| (r.reply.clone(), r.actions.clone()))
                    .unwrap_or_else(|| (self.default_reply.clone(), Vec::new()))
            }
        }
    }
}

/// Lower case, letters/digits/apostrophes, single spaces: how transcripts
/// and keywords are compared.
pub fn normalise(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Brain for ScriptedBrain {
    fn greeting(&self) -> Option<String> {
        self.greeting.clone()
    }

    fn respond(&mut self, _conversation: &Conversation, input: &TurnInput, out: BrainSink) {
        self.calls += 1;
        self.inputs.push(input.clone());
        let (reply, actions) = self.pick(input);
        // Stream it word by word, as a token-streaming brain would.
        for (i, word) in reply.split(' ').enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            if !out.text(piece) {
                return;
            }
        }
        for a in actions {
            out.action(a);
        }
        out.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(brain: &mut ScriptedBrain, input: TurnInput) -> Vec<BrainChunk> {
        let (tx, rx) = crossbeam_channel::unbounded();
        brain.respond(&Conversation::default(), &input, BrainSink::new(7, tx));
        rx.try_iter()
            .map(|(reply, c)| {
                assert_eq!(reply, 7);
                c
            })
            .collect()
    }

    fn speech(t: &str) -> TurnInput {
        TurnInput::Speech {
            text: t.into(),
            at: MediaTime::ZERO,
        }
    }

    #[test]
    fn scripted_rules_stream_text_then_actions() {
        let mut b = ScriptedBrain::new("Sorry?")
            .on("appointment|book", "Sure, which day?")
            .on_with("bye", "Goodbye.", vec![Action::Hangup]);
        let chunks = collect(&mut b, speech("I'd like to BOOK an appointment."));
        let text: String = chunks
            .iter()
            .filter_map(|c| match c {
                BrainChunk::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Sure, which day?");
        assert!(chunks.len() > 2, "streamed in pieces");
        assert_eq!(chunks.last(), Some(&BrainChunk::Done));
        let chunks = collect(&mut b, speech("ok bye"));
        assert!(chunks.contains(&BrainChunk::Action(Action::Hangup)));
        // "bookkeeping" is not "book".
        let chunks = collect(&mut b, speech("bookkeeping"));
        assert_eq!(chunks[0], BrainChunk::Text("Sorry?".into()));
        let chunks = collect(
            &mut b,
            TurnInput::Dtmf {
                digits: "42".into(),
                at: MediaTime::ZERO,
            },
        );
        assert_eq!(chunks[0], BrainChunk::Text("You".into()));
        assert_eq!(b.calls, 4);
    }

    #[test]
    fn variables_last_value_wins() {
        let mut c = Conversation::default();
        c.variables.push(("a".into(), "1".into()));
        c.variables.push(("a".into(), "2".into()));
        assert_eq!(c.variable("a"), Some("2"));
        assert_eq!(c.variable("b"), None);
    }
}
