//! Campaign and contact states, and which campaign transitions are legal.
//!
//! ```text
//! draft --start--> running --pause--> paused --resume--> running
//!   |                 |                  |
//!   +------stop-------+-------stop-------+--> stopped      (terminal)
//!                     +--(no contacts left)--> completed   (terminal)
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Being prepared: edit it, upload contacts, then start it.
    Draft,
    /// Calling.
    Running,
    /// Not calling; calls in progress finish. Editable; resume to go on.
    Paused,
    /// Ended by an operator (terminal).
    Stopped,
    /// Every contact settled (terminal).
    Completed,
}

/// An operator's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// draft -> running.
    Start,
    /// running -> paused.
    Pause,
    /// paused -> running.
    Resume,
    /// draft, running or paused -> stopped.
    Stop,
}

impl Command {
    /// As in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Stop => "stop",
        }
    }
}

/// An illegal transition, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command} a campaign that is {from}: {hint}")]
pub struct TransitionError {
    /// The command.
    pub command: &'static str,
    /// The campaign's state.
    pub from: &'static str,
    /// What would work.
    pub hint: &'static str,
}

impl CampaignStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Stopped => "stopped",
            CampaignStatus::Completed => "completed",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<CampaignStatus> {
        Some(match s {
            "draft" => CampaignStatus::Draft,
            "running" => CampaignStatus::Running,
            "paused" => CampaignStatus::Paused,
            "stopped" => CampaignStatus::Stopped,
            "completed" => CampaignStatus::Completed,
            _ => return None,
        })
    }

    /// Stopped or completed: nothing more happens.
    pub fn is_terminal(self) -> bool {
        matches!(self, CampaignStatus::Stopped | CampaignStatus::Completed)
    }

    /// The document can be replaced (draft or paused).
    pub fn editable(self) -> bool {
        matches!(self, CampaignStatus::Draft | CampaignStatus::Paused)
    }

    /// The state after `command`, or why not.
    pub fn apply(self, command: Command) -> Result<CampaignStatus, TransitionError> {
        use CampaignStatus::*;
        let fail = |hint| TransitionError {
            command: command.as_str(),
            from: self.as_str(),
            hint,
        };
        match (self, command) {
            (Draft, Command::Start) => Ok(Running),
            (Running, Command::Pause) => Ok(Paused),
            (Paused, Command::Resume) => Ok(Running),
            (Draft | Running | Paused, Command::Stop) => Ok(Stopped),
            (Stopped | Completed, _) => Err(fail("it is finished; create a new campaign")),
            (Running, Command::Start | Command::Resume) => Err(fail("it is already running")),
            (Paused, Command::Start) => Err(fail("resume it instead")),
            (Paused, Command::Pause) => Err(fail("it is already paused")),
            (Draft, Command::Pause | Command::Resume) => Err(fail("start it first")),
        }
    }
}

/// Where a contact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContactStatus {
    /// Waiting for its next attempt (`next_attempt_ms`).
    Pending,
    /// A call is in progress.
    Dialing,
    /// Reached (or interrupted by a restart: never called twice).
    Done,
    /// Not reached after the last attempt.
    Exhausted,
    /// The call failed in a way retrying does not fix (rejected).
    Failed,
    /// On the do-not-call list: never called.
    Dnc,
}

impl ContactStatus {
    /// Every state, in order.
    pub const ALL: [ContactStatus; 6] = [
        ContactStatus::Pending,
        ContactStatus::Dialing,
        ContactStatus::Done,
        ContactStatus::Exhausted,
        ContactStatus::Failed,
        ContactStatus::Dnc,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Pending => "pending",
            ContactStatus::Dialing => "dialing",
            ContactStatus::Done => "done",
            ContactStatus::Exhausted => "exhausted",
            ContactStatus::Failed => "failed",
            ContactStatus::Dnc => "dnc",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<ContactStatus> {
        ContactStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignStatus::*;

    #[test]
    fn the_lifecycle_runs_one_way() {
        assert_eq!(Draft.apply(Command::Start), Ok(Running));
        assert_eq!(Running.apply(Command::Pause), Ok(Paused));
        assert_eq!(Paused.apply(Command::Resume), Ok(Running));
        for s in [Draft, Running, Paused] {
            assert_eq!(s.apply(Command::Stop), Ok(Stopped));
        }
        let e = Paused.apply(Command::Start).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot start a campaign that is paused: resume it instead"
        );
        assert!(Draft.apply(Command::Resume).is_err());
        assert!(Draft.apply(Command::Pause).is_err());
        assert!(Running.apply(Command::Start).is_err());
        assert!(Paused.apply(Command::Pause).is_err());
        for s in [Stopped, Completed] {
            for c in [
                Command::Start,
                Command::Pause,
                Command::Resume,
                Command::Stop,
            ] {
                assert!(s.apply(c).is_err(), "{s:?} {c:?}");
            }
            assert!(s.is_terminal() && !s.editable());
        }
        assert!(Draft.editable() && Paused.editable() && !Running.editable());
    }

    #[test]
    fn states_round_trip_through_storage() {
        for s in [Draft, Running, Paused, Stopped, Completed] {
            assert_eq!(CampaignStatus::parse(s.as_str()), Some(s));
        }
        for c in ContactStatus::ALL {
            assert_eq!(ContactStatus::parse(c.as_str()), Some(c));
        }
        assert_eq!(CampaignStatus::parse("gone"), None);
    }
}
