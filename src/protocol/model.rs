//! The task table's protocol, model-checked: every interleaving of deliveries of one business
//! key — starts (two events, each delivered again), a stop, Connect's contact event — with a
//! crash at every step, a call whose answer is lost although Connect applied it, a call that
//! never reached Connect, Connect refusing the start, the clock running claims out, and
//! redeliveries; explored breadth-first over the states they reach. Every decision and every
//! write's condition is the protocol's own (`claim`, `act`, `settle`, `Expect::holds`, ...),
//! as the table code runs them against DynamoDB; only the sequencing of one delivery (read,
//! decide, write, call, settle) is spelled out here, step for step as `lifecycle` does it.
//!
//! Checked in every state:
//! - at most one task of the key is open in Connect;
//! - a workflow is told at most once per task;
//! - no item holds a claim nobody can settle: a `starting` item past its claim is the trace of
//!   a crash or of a call whose outcome is unknown, never of an answer that was known (a start
//!   Connect refused once stayed `starting`: every action answered KeyBusy until the DLQ).
//!
//! and where nothing more can happen (every delivery done, no redelivery or clock step left):
//! - every task Connect created is found again: open in the item, or the item's current claim
//!   of its generation (the next start takes it over with the same token);
//! - every task that ended and was heard of, or stopped, has had its workflow told (where every
//!   delivery finished well). The model found a contact event that arrived before the table
//!   knew its contact (the start's answer in flight, or a crash between the call and the table
//!   write) ignored for good: the key stayed open on an ended task and its workflow was never
//!   told. Such an event now leaves a mark (`ended#<contact>`) that the start reads once its
//!   task is open.

use std::collections::{HashSet, VecDeque};

use super::*;

/// How long a claim holds in model time; a clock step is longer.
const CLAIM: i64 = 5;
const TICK: i64 = 10;
/// How long a notification claim holds.
const NOTIFY: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Call {
    /// Connect applied it and the answer arrived.
    Answered,
    /// Connect applied it; the answer was lost (a timeout, a crash of the connection).
    Lost,
    /// It never reached Connect.
    Unsent,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Pc {
    /// Reads the item.
    Read,
    /// Writes what the read decided, with what it expects of the item.
    Claim(Claim2),
    /// Calls Connect for this generation.
    Call(u64),
    /// Settles the claim after the call (`true`: the call's outcome is unknown to us: its
    /// answer was lost, or it may not have reached Connect).
    Settle(u64, Settle2, bool),
    /// An action: reads the item.
    ActRead,
    /// Stops the contact of `generation`, then ends the item.
    Stop(u64),
    /// Ends the item (seen at `generation`) as `stopped` (true) or heard (false).
    End(u64, bool),
    /// Reads the item again to take its notification over.
    NotifyRead(u64),
    /// Tells the workflow of `generation`, then writes that it did.
    Notify(u64),
    /// Records the notification.
    Notified(u64),
    /// After its task is open (opened now, or found open): a contact event that came before
    /// the table knew the contact left a mark; if there is one for this generation's contact
    /// and Connect confirms the ending, the task is ended here.
    Early(u64),
    /// A contact event: Connect confirms the ending, then the table is read by the contact.
    Hear,
    /// Not the table's contact (yet): the mark is written...
    Mark,
    /// ...and the table read again (the start writes the contact before it reads the mark).
    Reread,
    Done(Outcome),
}

/// A claim decision with the snapshot it was made from (`Claim` itself, hashable here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Claim2 {
    Create,
    Take {
        seen: Box<TaskItem>,
        generation: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Settle2 {
    Opened,
    Refused,
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    Fine,
    /// Failed for now: its source delivers it again.
    Again,
    Crashed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Start(u8),
    Stop,
    /// Connect's contact event about the task of a generation.
    Hear(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Delivery {
    kind: Kind,
    pc: Pc,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Contact {
    generation: u64,
    ended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    item: Option<TaskItem>,
    now: i64,
    /// The tasks Connect holds, by the generation whose token made each.
    contacts: Vec<Contact>,
    deliveries: Vec<Delivery>,
    /// Completion events sent, by generation (Step Functions takes a task token's answer once,
    /// so the workflow itself is told once however often it is sent; the bus is not).
    told: Vec<u64>,
    /// A notifier crashed after sending and before recording it: the next one sends again
    /// (at least once, never lost; the event carries the same contact, key and outcome).
    sent_unrecorded: bool,
    /// Generations whose ending was heard of (a contact event delivered) or stopped.
    must_tell: Vec<u64>,
    /// Contact events that came before the table knew their contact (`ended#<contact>`).
    early: Vec<u64>,
    /// The item's claim was left by a crash, or by a call whose outcome is unknown.
    unknown: bool,
    /// A claim was taken over (a crash's, an unknown outcome's, or a refused start's): the
    /// model reached that path (see `explore`'s reachability).
    taken_over: bool,
    redeliveries: u8,
    ticks: u8,
}

/// The bounds of one exploration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    /// Distinct start events for the key (each may be delivered again).
    starts: u8,
    stop: bool,
    hear: bool,
    /// Connect refuses every start (a request it will never take).
    refusing: bool,
    redeliveries: u8,
    ticks: u8,
    crashes: bool,
    /// How a call's outcome settles the claim (`settle`; a test swaps in the rule before it).
    settle_rule: fn(Option<Call>) -> Settle,
}

/// `protocol::settle` over the model's call outcomes (None: Connect refused).
fn settle_rule(call: Option<Call>) -> Settle {
    let result: Result<(), crate::error::BridgeError> = match call {
        Some(Call::Answered) => Ok(()),
        None => Err(crate::error::BridgeError::Connect {
            code: "InvalidParameterException".into(),
            message: String::new(),
        }),
        Some(_) => Err(crate::error::BridgeError::Dispatch {
            code: "TimeoutError",
            message: String::new(),
        }),
    };
    settle(&result)
}

impl Config {
    pub(super) fn small(refusing: bool) -> Config {
        Config {
            starts: 2,
            stop: true,
            hear: true,
            refusing,
            redeliveries: 1,
            ticks: 1,
            crashes: true,
            settle_rule,
        }
    }

    pub(super) fn large(refusing: bool) -> Config {
        Config {
            redeliveries: 2,
            ticks: 2,
            ..Config::small(refusing)
        }
    }
}

fn item(generation: u64, origin: u8, now: i64) -> TaskItem {
    TaskItem {
        pk: "task#k".into(),
        state: State::Starting,
        generation,
        contact_id: None,
        client_token: None,
        route: None,
        origin: Some(origin.to_string()),
        payload_hash: None,
        task_token: Some("workflow".into()),
        claim_until: now + CLAIM,
        disconnect_reason: None,
        notified: false,
        notify_until: 0,
    }
}

impl World {
    fn new(config: &Config) -> World {
        let mut deliveries: Vec<Delivery> = (0..config.starts)
            .map(|o| Delivery {
                kind: Kind::Start(o),
                pc: Pc::Read,
            })
            .collect();
        if config.stop {
            deliveries.push(Delivery {
                kind: Kind::Stop,
                pc: Pc::ActRead,
            });
        }
        World {
            item: None,
            now: 0,
            contacts: Vec::new(),
            deliveries,
            told: Vec::new(),
            sent_unrecorded: false,
            must_tell: Vec::new(),
            early: Vec::new(),
            unknown: false,
            taken_over: false,
            redeliveries: 0,
            ticks: 0,
        }
    }

    /// A conditional write: applied when `expect` holds.
    fn write(&mut self, expect: &Expect, change: impl FnOnce(&mut Option<TaskItem>)) -> bool {
        let holds = expect.holds(self.item.as_ref());
        if holds {
            change(&mut self.item);
        }
        holds
    }

    fn contact_of(&self, generation: u64) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.generation == generation)
    }

    /// Connect describes the task of `generation` as ended (DescribeContact).
    fn confirmed(&self, generation: u64) -> bool {
        self.contact_of(generation).is_some_and(|c| c.ended)
    }

    /// The table knows the contact of `generation` (its `contact#` pointer: `by_contact`).
    fn knows(&self, generation: u64) -> bool {
        self.item
            .as_ref()
            .is_some_and(|i| i.generation == generation && i.contact_id.is_some())
    }

    /// Every state one step of delivery `d` leads to.
    fn step(&self, d: usize, config: &Config) -> Vec<World> {
        let delivery = &self.deliveries[d];
        let mut out = Vec::new();
        let next = |pc: Pc, w: &mut World| {
            w.deliveries[d].pc = pc;
        };
        match (&delivery.kind, &delivery.pc) {
            (_, Pc::Done(_)) => {}
            (Kind::Start(origin), Pc::Read) => {
                let mut w = self.clone();
                let pc = match claim(self.item.as_ref(), &origin.to_string(), self.now) {
                    Claim::Create => Pc::Claim(Claim2::Create),
                    Claim::Existing => match self.item.as_ref() {
                        Some(i) if i.state == State::Open => Pc::Early(i.generation),
                        // Its own task ended (its ending's notifier may have been this very
                        // event, cut short): the notification is finished if it was not.
                        Some(i) if i.state.ended() && !i.notified => Pc::NotifyRead(i.generation),
                        _ => Pc::Done(Outcome::Fine),
                    },
                    Claim::Busy => Pc::Done(Outcome::Again),
                    Claim::Take { generation, .. } => Pc::Claim(Claim2::Take {
                        seen: Box::new(self.item.clone().expect("an item to take")),
                        generation,
                    }),
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Start(origin), Pc::Claim(decision)) => {
                let mut w = self.clone();
                let (now, origin) = (self.now, *origin);
                let pc = match decision {
                    Claim2::Create => {
                        if w.write(&Expect::Absent, |i| *i = Some(item(1, origin, now))) {
                            w.unknown = false;
                            Pc::Call(1)
                        } else {
                            Pc::Done(Outcome::Again)
                        }
                    }
                    Claim2::Take { seen, generation } => {
                        let expect = match claim(Some(seen), &origin.to_string(), now) {
                            Claim::Take { expect, .. } => expect,
                            other => unreachable!("{other:?}"),
                        };
                        let g = *generation;
                        let mut same = false;
                        let taken = w.write(&expect, |i| {
                            let old = i.take().expect("held");
                            let mut new = item(g, origin, now);
                            if g == old.generation {
                                new.contact_id = old.contact_id;
                                same = true;
                            }
                            *i = Some(new);
                        });
                        if taken {
                            w.taken_over |= same;
                            w.unknown = false;
                            Pc::Call(g)
                        } else {
                            Pc::Done(Outcome::Again)
                        }
                    }
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Start(_), Pc::Call(g)) => {
                let exists = self.contact_of(*g).is_some();
                if config.refusing && !exists {
                    let mut w = self.clone();
                    let rule = (config.settle_rule)(None);
                    next(Pc::Settle(*g, settle2(rule), false), &mut w);
                    out.push(w);
                } else {
                    for call in [Call::Answered, Call::Lost, Call::Unsent] {
                        let mut w = self.clone();
                        if call != Call::Unsent && !exists {
                            w.contacts.push(Contact {
                                generation: *g,
                                ended: false,
                            });
                        }
                        let rule = (config.settle_rule)(Some(call));
                        next(
                            Pc::Settle(*g, settle2(rule), call != Call::Answered),
                            &mut w,
                        );
                        out.push(w);
                    }
                }
            }
            (Kind::Start(_), Pc::Settle(g, how, unknown)) => {
                let mut w = self.clone();
                let expect = settle_expect(*g);
                let g = *g;
                let pc = match how {
                    Settle2::Opened => {
                        w.write(&expect, |i| {
                            let i = i.as_mut().expect("held");
                            i.state = State::Open;
                            i.contact_id = Some(format!("c{g}"));
                        });
                        Pc::Early(g)
                    }
                    Settle2::Refused => {
                        w.write(&expect, |i| {
                            let i = i.as_mut().expect("held");
                            i.state = State::Refused;
                            i.claim_until = 0;
                        });
                        Pc::Done(Outcome::Fine)
                    }
                    Settle2::Released => {
                        if w.write(&expect, |i| i.as_mut().expect("held").claim_until = 0) {
                            w.unknown = *unknown;
                        }
                        Pc::Done(Outcome::Again)
                    }
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Start(_), Pc::Early(g)) => {
                let mut w = self.clone();
                let pc = if self.early.contains(g) && self.confirmed(*g) {
                    Pc::End(*g, false)
                } else {
                    Pc::Done(Outcome::Fine)
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Stop, Pc::ActRead) => {
                let mut w = self.clone();
                let pc = match act(self.item.as_ref(), true) {
                    Act::OnTask => Pc::Stop(self.item.as_ref().expect("open").generation),
                    Act::Busy => Pc::Done(Outcome::Again),
                    Act::StopEnded => Pc::NotifyRead(self.item.as_ref().expect("ended").generation),
                    Act::Missing => Pc::Done(Outcome::Fine),
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Stop, Pc::Stop(g)) => {
                // StopContact: the contact ends (an ended one: ContactNotFound, also a stop).
                let mut w = self.clone();
                if let Some(c) = w.contacts.iter_mut().find(|c| c.generation == *g) {
                    c.ended = true;
                }
                if !w.must_tell.contains(g) {
                    w.must_tell.push(*g);
                }
                next(Pc::End(*g, true), &mut w);
                out.push(w);
            }
            (Kind::Hear(g), Pc::Hear) => {
                // Connect confirms the ending (DescribeContact), then the table is read by the
                // contact: an item at another generation is another contact's.
                let mut w = self.clone();
                let pc = match (self.confirmed(*g), self.knows(*g)) {
                    (true, true) => Pc::End(*g, false),
                    (_, false) => Pc::Mark,
                    _ => Pc::Done(Outcome::Fine),
                };
                next(pc, &mut w);
                out.push(w);
            }
            (Kind::Hear(g), Pc::Mark) => {
                let mut w = self.clone();
                if !w.early.contains(g) {
                    w.early.push(*g);
                }
                next(Pc::Reread, &mut w);
                out.push(w);
            }
            (Kind::Hear(g), Pc::Reread) => {
                let mut w = self.clone();
                let pc = if self.confirmed(*g) && self.knows(*g) {
                    Pc::End(*g, false)
                } else {
                    Pc::Done(Outcome::Fine)
                };
                next(pc, &mut w);
                out.push(w);
            }
            (_, Pc::End(g, stopped)) => {
                let mut w = self.clone();
                let now = self.now;
                let won = self.item.as_ref().is_some_and(|i| i.state == State::Open)
                    && w.write(&end_expect(*g), |i| {
                        let i = i.as_mut().expect("open");
                        i.state = if *stopped {
                            State::Stopped
                        } else {
                            State::Completed
                        };
                        i.notified = false;
                        i.notify_until = now + NOTIFY;
                    });
                let pc = if won {
                    Pc::Notify(*g)
                } else {
                    Pc::NotifyRead(*g)
                };
                next(pc, &mut w);
                out.push(w);
            }
            (_, Pc::NotifyRead(g)) => {
                let mut w = self.clone();
                let now = self.now;
                let pc = match self.item.as_ref().filter(|i| i.generation == *g) {
                    Some(item) => match notification_claim(item, now) {
                        Some(expect) => {
                            if w.write(&expect, |i| {
                                i.as_mut().expect("ended").notify_until = now + NOTIFY
                            }) {
                                Pc::Notify(*g)
                            } else {
                                Pc::Done(Outcome::Fine)
                            }
                        }
                        // Told already, or another notifier holds the claim: if that one
                        // crashed, the event's next delivery takes it over.
                        None if item.state.ended() && !item.notified => Pc::Done(Outcome::Again),
                        None => Pc::Done(Outcome::Fine),
                    },
                    None => Pc::Done(Outcome::Fine),
                };
                next(pc, &mut w);
                out.push(w);
            }
            (_, Pc::Notify(g)) => {
                // Step Functions takes a task token's answer once: a second is refused (and
                // read as "the workflow is gone").
                let mut w = self.clone();
                w.told.push(*g);
                next(Pc::Notified(*g), &mut w);
                out.push(w);
            }
            (_, Pc::Notified(g)) => {
                let mut w = self.clone();
                w.write(&Expect::Generation { generation: *g }, |i| {
                    i.as_mut().expect("ended").notified = true
                });
                next(Pc::Done(Outcome::Fine), &mut w);
                out.push(w);
            }
            (kind, pc) => unreachable!("{kind:?} at {pc:?}"),
        }
        // A crash at this step: the delivery ends where it is; its source delivers it again.
        if config.crashes && !matches!(delivery.pc, Pc::Done(_)) {
            let mut w = self.clone();
            if matches!(delivery.pc, Pc::Call(_) | Pc::Settle(..)) {
                w.unknown = true;
            }
            if matches!(delivery.pc, Pc::Notified(_)) {
                w.sent_unrecorded = true;
            }
            w.deliveries[d].pc = Pc::Done(Outcome::Crashed);
            out.push(w);
        }
        out
    }

    /// Every state one step of anything leads to.
    fn successors(&self, config: &Config) -> Vec<World> {
        let mut out = Vec::new();
        for d in 0..self.deliveries.len() {
            out.extend(self.step(d, config));
        }
        // Redelivery of a delivery that failed for now or crashed.
        if self.redeliveries < config.redeliveries {
            for (d, delivery) in self.deliveries.iter().enumerate() {
                if matches!(delivery.pc, Pc::Done(Outcome::Again | Outcome::Crashed)) {
                    let mut w = self.clone();
                    w.redeliveries += 1;
                    w.deliveries[d].pc = match delivery.kind {
                        Kind::Start(_) => Pc::Read,
                        Kind::Stop => Pc::ActRead,
                        Kind::Hear(_) => Pc::Hear,
                    };
                    out.push(w);
                }
            }
        }
        // Connect's contact event for an ended task (an agent completes it, or the stop's own
        // DISCONNECTED): delivered once per generation, more through redelivery.
        if config.hear {
            for c in &self.contacts {
                let heard = self
                    .deliveries
                    .iter()
                    .any(|d| d.kind == Kind::Hear(c.generation));
                if !heard {
                    let mut w = self.clone();
                    if let Some(contact) =
                        w.contacts.iter_mut().find(|x| x.generation == c.generation)
                    {
                        contact.ended = true;
                    }
                    if !w.must_tell.contains(&c.generation) {
                        w.must_tell.push(c.generation);
                    }
                    w.deliveries.push(Delivery {
                        kind: Kind::Hear(c.generation),
                        pc: Pc::Hear,
                    });
                    out.push(w);
                }
            }
        }
        // The clock runs claims out. Claims hold until their invocation's deadline has passed,
        // so every invocation still at work when they run out has been ended by Lambda.
        if self.ticks < config.ticks {
            let mut w = self.clone();
            w.ticks += 1;
            w.now += TICK;
            for d in 0..w.deliveries.len() {
                let pc = w.deliveries[d].pc.clone();
                if !matches!(pc, Pc::Done(_)) {
                    w.unknown |= matches!(pc, Pc::Call(_) | Pc::Settle(..));
                    w.sent_unrecorded |= matches!(pc, Pc::Notified(_));
                    w.deliveries[d].pc = Pc::Done(Outcome::Crashed);
                }
            }
            out.push(w);
        }
        out
    }

    /// The safety properties (every state).
    fn check(&self) -> Result<(), String> {
        let open = self.contacts.iter().filter(|c| !c.ended).count();
        if open > 1 {
            return Err(format!("{open} tasks of the key are open in Connect"));
        }
        // A workflow is told only of a task Connect has, and that has ended.
        if let Some(g) = self
            .told
            .iter()
            .find(|g| !self.contact_of(**g).is_some_and(|c| c.ended))
        {
            return Err(format!("told of generation {g}, which has no ended task"));
        }
        let mut told = self.told.clone();
        told.sort_unstable();
        if told.windows(2).any(|w| w[0] == w[1]) && !self.sent_unrecorded {
            return Err(format!("a workflow was told twice: {:?}", self.told));
        }
        if let Some(i) = &self.item {
            let in_flight = self
                .deliveries
                .iter()
                .any(|d| matches!(d.pc, Pc::Call(g) | Pc::Settle(g, _, _) if g == i.generation));
            if i.state == State::Starting
                && i.claim_until <= self.now
                && !in_flight
                && !self.unknown
            {
                return Err(format!(
                    "the key stays claimed past its claim although the start's outcome is known: {i:?}"
                ));
            }
        }
        Ok(())
    }

    /// The properties of a state where nothing more can happen.
    fn check_final(&self) -> Result<(), String> {
        // Where every delivery finished well, every ending heard of or stopped was told.
        let all_fine = self
            .deliveries
            .iter()
            .all(|d| d.pc == Pc::Done(Outcome::Fine));
        if all_fine {
            for g in &self.must_tell {
                let reached = self.item.as_ref().is_some_and(|i| i.generation == *g);
                if reached && !self.told.contains(g) {
                    return Err(format!("the ending of generation {g} was never told"));
                }
            }
        }
        for c in self.contacts.iter().filter(|c| !c.ended) {
            let found = self.item.as_ref().is_some_and(|i| {
                i.generation == c.generation
                    && (i.state == State::Open || i.state == State::Starting)
            });
            if !found {
                return Err(format!(
                    "Connect's task of generation {} is lost to the table: {:?}",
                    c.generation, self.item
                ));
            }
        }
        Ok(())
    }
}

fn settle2(settle: Settle) -> Settle2 {
    match settle {
        Settle::Opened => Settle2::Opened,
        Settle::Refused => Settle2::Refused,
        Settle::Released => Settle2::Released,
    }
}

/// Explores every state `config` reaches; the number of states, or the first violation with the
/// path of states that led to it.
pub(super) fn explore(config: &Config) -> Result<usize, String> {
    let start = World::new(config);
    let mut seen: HashSet<World> = HashSet::new();
    let mut queue: VecDeque<World> = VecDeque::new();
    seen.insert(start.clone());
    queue.push_back(start);
    while let Some(world) = queue.pop_front() {
        world.check().map_err(|e| format!("{e}\nin {world:#?}"))?;
        let next = world.successors(config);
        if next.is_empty() {
            world
                .check_final()
                .map_err(|e| format!("{e}\nin {world:#?}"))?;
        }
        for w in next {
            if seen.insert(w.clone()) {
                queue.push_back(w);
            }
        }
    }
    // Safety alone holds of a protocol that never does anything: every path that matters must
    // also be reached (a condition that never holds, or a decision that never takes a path,
    // would otherwise pass).
    let reached = |what: &str, found: bool| {
        if found {
            Ok(())
        } else {
            Err(format!("never reached: {what}"))
        }
    };
    let opened = |w: &World| w.item.as_ref().is_some_and(|i| i.state == State::Open);
    if config.refusing {
        reached(
            "a refused start",
            seen.iter()
                .any(|w| w.item.as_ref().is_some_and(|i| i.state == State::Refused)),
        )?;
        reached(
            "a refused start taken over",
            seen.iter().any(|w| w.taken_over),
        )?;
    } else {
        reached("a task open in the table", seen.iter().any(opened))?;
        reached(
            "a claim taken over and its task open",
            seen.iter().any(|w| w.taken_over && opened(w)),
        )?;
        if config.hear || config.stop {
            reached("an ending told", seen.iter().any(|w| !w.told.is_empty()))?;
        }
        if config.starts > 1 && (config.hear || config.stop) {
            reached(
                "the key's next task open",
                seen.iter()
                    .any(|w| w.item.as_ref().is_some_and(|i| i.generation > 1) && opened(w)),
            )?;
        }
    }
    Ok(seen.len())
}

/// The configurations `make test` explores (a few seconds), and `make model` (minutes).
fn configurations(large: bool) -> Vec<(&'static str, Config)> {
    let base = Config::small(false);
    let mut out = vec![
        (
            "two starts and their contact events",
            Config {
                stop: false,
                redeliveries: 0,
                ..base
            },
        ),
        (
            "a start, a stop and the contact events",
            Config { starts: 1, ..base },
        ),
        (
            "two starts and a stop, Connect refusing",
            Config {
                hear: false,
                ..Config::small(true)
            },
        ),
    ];
    if large {
        out.push((
            "two starts and their contact events, redelivered",
            Config {
                stop: false,
                ..base
            },
        ));
        out.push(("two starts, a stop and the contact events", base));
        out.push((
            "two starts, a stop, two redeliveries and two clock steps",
            Config::large(false),
        ));
        out.push(("the same, Connect refusing", Config::large(true)));
    }
    out
}

#[test]
fn the_task_tables_protocol_holds_in_every_interleaving() {
    let large = std::env::var("CTB_MODEL").as_deref() == Ok("large");
    for (name, config) in configurations(large) {
        let started = std::time::Instant::now();
        let states = explore(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "protocol model, {name}: {states} states in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(states > 100, "{name}: {states}");
    }
}

/// The model finds the fault the protocol had before a refused start was told from an unknown
/// outcome: a start Connect refused was only released, and the key stayed `starting`.
#[test]
fn the_model_finds_a_refused_start_that_holds_its_key() {
    fn before(call: Option<Call>) -> Settle {
        match call {
            Some(Call::Answered) => Settle::Opened,
            _ => Settle::Released,
        }
    }
    let config = Config {
        settle_rule: before,
        ..Config::small(true)
    };
    let found = explore(&config).expect_err("the model finds it");
    assert!(found.contains("stays claimed"), "{found}");
}
