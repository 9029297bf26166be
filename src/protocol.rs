//! The task table's protocol as data: what a key's item is (`TaskItem`, `State`), what each
//! step decides from the item it read (`claim`, `act`, `settle`), and what each conditional write
//! expects of the item to apply (`Expect`). The table code (`table`) turns an `Expect` into
//! DynamoDB's condition expression and the lifecycle (`lifecycle`) follows the decisions; the
//! model below explores every interleaving of deliveries, crashes, lost answers and clock steps
//! through the very same functions, with `Expect::holds` standing in for DynamoDB's check. A
//! change to a decision or a condition is a change to both.

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Starting,
    /// Connect refused the start (its answer said so: nothing was opened with the claim's
    /// token). The key has no task; the next start takes the claim over.
    Refused,
    Open,
    Completed,
    Stopped,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Refused => "refused",
            State::Open => "open",
            State::Completed => "completed",
            State::Stopped => "stopped",
            State::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "starting" => State::Starting,
            "refused" => State::Refused,
            "open" => State::Open,
            "completed" => State::Completed,
            "stopped" => State::Stopped,
            "expired" => State::Expired,
            _ => return None,
        })
    }

    pub fn ended(self) -> bool {
        matches!(self, State::Completed | State::Stopped | State::Expired)
    }
}

/// A task item as read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskItem {
    pub pk: String,
    pub state: State,
    pub generation: u64,
    pub contact_id: Option<String>,
    pub client_token: Option<String>,
    pub route: Option<String>,
    pub origin: Option<String>,
    pub payload_hash: Option<String>,
    pub task_token: Option<String>,
    pub claim_until: i64,
    pub disconnect_reason: Option<String>,
    pub notified: bool,
    pub notify_until: i64,
}

/// What a conditional write expects of the item for it to apply: DynamoDB checks it (`table`
/// renders it as a condition expression), the model checks it with `holds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No item yet (the key's first claim).
    Absent,
    /// The item as a claim saw it: its state, generation and claim (a take-over).
    Claimed {
        state: State,
        generation: u64,
        claim_until: i64,
    },
    /// The item in `state` at `generation`.
    At { state: State, generation: u64 },
    /// An ended item whose notification is not done and whose notification claim is the one
    /// seen (taking a notification over).
    Notifiable { generation: u64, notify_until: i64 },
    /// The generation's notification is not done.
    Unnotified { generation: u64 },
    /// The item is still at `generation`.
    Generation { generation: u64 },
}

impl Expect {
    /// Whether a write with this expectation applies to `item`.
    pub fn holds(&self, item: Option<&TaskItem>) -> bool {
        match (self, item) {
            (Expect::Absent, None) => true,
            (Expect::Absent, Some(_)) | (_, None) => false,
            (
                Expect::Claimed {
                    state,
                    generation,
                    claim_until,
                },
                Some(i),
            ) => i.state == *state && i.generation == *generation && i.claim_until == *claim_until,
            (Expect::At { state, generation }, Some(i)) => {
                i.state == *state && i.generation == *generation
            }
            (
                Expect::Notifiable {
                    generation,
                    notify_until,
                },
                Some(i),
            ) => i.generation == *generation && !i.notified && i.notify_until == *notify_until,
            (Expect::Unnotified { generation }, Some(i)) => {
                i.generation == *generation && !i.notified
            }
            (Expect::Generation { generation }, Some(i)) => i.generation == *generation,
        }
    }
}

/// What claiming a start decides from the item it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No item: create it (`Expect::Absent`), generation 1.
    Create,
    /// A task this event must not duplicate: the open one, or the one this very event opened
    /// before (a redelivery after the task ended).
    Existing,
    /// Another delivery is starting the key's task right now.
    Busy,
    /// Take the item over as `expect` says, to start `generation`: the same generation (a claim
    /// left by a crash or a failed call, or a start Connect refused: the same client token) or
    /// the next (the key's task ended).
    Take { expect: Expect, generation: u64 },
}

/// Claims the start of a key's task for the event whose identity is `origin`.
pub fn claim(item: Option<&TaskItem>, origin: &str, now: i64) -> Claim {
    let Some(item) = item else {
        return Claim::Create;
    };
    match item.state {
        State::Open => Claim::Existing,
        State::Starting if item.claim_until > now => Claim::Busy,
        State::Starting | State::Refused => Claim::Take {
            expect: Expect::Claimed {
                state: item.state,
                generation: item.generation,
                claim_until: item.claim_until,
            },
            generation: item.generation,
        },
        _ if item.origin.as_deref() == Some(origin) => Claim::Existing,
        ended => Claim::Take {
            expect: Expect::At {
                state: ended,
                generation: item.generation,
            },
            generation: item.generation + 1,
        },
    }
}

/// How a start's call ended, as the claim is settled after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Connect answered with the task: the item is open.
    Opened,
    /// Connect refused (nothing opened under the token): the key has no task.
    Refused,
    /// Anything else (no answer, a fault of Connect's, or any attempt of the call that had one):
    /// the task may exist; the claim is released so that the next delivery takes it over at
    /// once with the same token.
    Released,
}

/// How the claim of a start whose call ended with `result` is settled.
pub fn settle<T>(result: &Result<T, crate::error::BridgeError>) -> Settle {
    match result {
        Ok(_) => Settle::Opened,
        Err(e) if e.refused_by_connect() => Settle::Refused,
        Err(_) => Settle::Released,
    }
}

/// What every settling write of `generation`'s claim expects: the claim still stands.
pub fn settle_expect(generation: u64) -> Expect {
    Expect::At {
        state: State::Starting,
        generation,
    }
}

/// What an action (update, reschedule, stop, tag) finds on its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The key's open task: act on it.
    OnTask,
    /// A start is under way (or its outcome unknown until the start's next delivery): later.
    Busy,
    /// A stop of a task that has ended: done (its notification finished if it was not).
    StopEnded,
    /// No task (never, refused, or ended for actions other than stop): `if_missing` decides.
    Missing,
}

pub fn act(item: Option<&TaskItem>, stopping: bool) -> Act {
    match item {
        Some(i) if i.state == State::Open => Act::OnTask,
        Some(i) if i.state == State::Starting => Act::Busy,
        Some(i) if i.state.ended() && stopping => Act::StopEnded,
        _ => Act::Missing,
    }
}

/// What ending an open task expects: it is still open at its generation.
pub fn end_expect(generation: u64) -> Expect {
    Expect::At {
        state: State::Open,
        generation,
    }
}

/// Whether an ended item's notification may be taken over now (its notifier's claim ran out),
/// and what the taking write expects.
pub fn notification_claim(item: &TaskItem, now: i64) -> Option<Expect> {
    (item.state.ended() && !item.notified && item.notify_until <= now).then_some(
        Expect::Notifiable {
            generation: item.generation,
            notify_until: item.notify_until,
        },
    )
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    /// The table stores states as text: each reads back as itself, and only the ended ones
    /// count as ended.
    #[test]
    fn states_read_back_from_their_text() {
        for state in [
            State::Starting,
            State::Refused,
            State::Open,
            State::Completed,
            State::Stopped,
            State::Expired,
        ] {
            assert_eq!(State::parse(state.as_str()), Some(state));
            assert_eq!(
                state.ended(),
                matches!(state, State::Completed | State::Stopped | State::Expired)
            );
        }
        assert_eq!(State::Open.as_str(), "open");
        assert_eq!(State::parse("closed"), None);
    }
}
