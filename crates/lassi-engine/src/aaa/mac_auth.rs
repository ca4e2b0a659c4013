//! MAC authentication policy: which clients to ask RADIUS about, when to
//! ask again, and what an answer means. I/O-free, in the style of the
//! RADIUS client engine: the shell feeds triggers
//! ([`MacAuthPolicy::handle_trigger`]), answers
//! ([`MacAuthPolicy::handle_answer`]) and the time
//! ([`MacAuthPolicy::handle_timeout`]), and carries out what it drains:
//! Access-Requests to send ([`MacAuthPolicy::poll_request`]) and what to do
//! with a client ([`MacAuthPolicy::poll_action`]); it sleeps until
//! [`MacAuthPolicy::poll_timeout`].
//!
//! The rules: every client that gets a lease is asked about once per lease
//! (a renewal of the same address is not asked again); a client whose
//! MAC-authenticated session ended on its own is asked again. While no
//! server answers, the question is repeated after 10 s, 20 s, 40 s … at most
//! every 5 min, for as long as the client is there and not logged in (the
//! shell answers [`MacAuthAnswer::NotNeeded`] once it is not). An
//! Access-Accept logs the client in without the portal; an Access-Reject
//! leaves it to the portal. A client has at most one question open; a flood
//! of new clients is bounded in the clients followed and in the questions
//! asked at once.

use core::net::Ipv4Addr;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::reply::mac_authorization;
use crate::dataplane::Event;
use crate::radius::attrs::ReplyLimits;
use crate::session::{Authorization, EndReason};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Why MAC authentication should look at a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAuthTrigger {
    /// It got or renewed a lease.
    Lease(MacAddr, Ipv4Addr),
    /// Its MAC-authenticated session ended on its own (timeout, quota, lost
    /// carrier): ask again.
    Ended(MacAddr, Ipv4Addr),
}

/// The MAC-authentication trigger an engine event calls for, if any.
pub fn mac_auth_trigger(ev: &Event) -> Option<MacAuthTrigger> {
    match ev {
        Event::LeaseBound { mac, ip, .. } => Some(MacAuthTrigger::Lease(*mac, *ip)),
        Event::SessionEnded(e)
            if e.user.as_deref() == Some(e.mac.to_dashed().as_str())
                && !matches!(
                    e.reason,
                    EndReason::UserRequest | EndReason::AdminReset | EndReason::NasReboot
                ) =>
        {
            Some(MacAuthTrigger::Ended(e.mac, e.ip))
        }
        _ => None,
    }
}

/// The policy's knobs; the defaults are lassi's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAuthPolicySettings {
    /// Wait before asking again after the first unanswered question.
    pub first_retry_ms: u64,
    /// The longest wait between questions (the wait doubles up to it).
    pub max_retry_ms: u64,
    /// Clients followed at most (asking or waiting to ask again); a
    /// trigger beyond it is dropped and not remembered, so the client's
    /// next lease renewal tries again. Also the size at which the memory
    /// of clients already asked is forgotten.
    pub max_clients: usize,
    /// Questions open at once; more wait their turn.
    pub max_asking: usize,
}

impl Default for MacAuthPolicySettings {
    fn default() -> Self {
        MacAuthPolicySettings {
            first_retry_ms: 10_000,
            max_retry_ms: 300_000,
            max_clients: 65_536,
            max_asking: 256,
        }
    }
}

/// An Access-Request to send for a client. Hand it back with the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAuthRequest {
    /// The client's MAC (the user name, in the configured form).
    pub mac: MacAddr,
    /// The client's address.
    pub ip: Ipv4Addr,
    attempt: u64,
}

/// What came of a [`MacAuthRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MacAuthAnswer {
    /// Access-Accept, with what to enforce.
    Accept(Box<ReplyLimits>),
    /// Access-Reject.
    Reject,
    /// No server answered.
    Unreachable,
    /// Not asked: the client is gone, has another MAC, or is logged in.
    NotNeeded,
}

/// What to do with a client.
#[derive(Clone, Debug)]
pub enum MacAuthAction {
    /// Log it in without the portal.
    Authorize {
        /// The client.
        mac: MacAddr,
        /// Its address.
        ip: Ipv4Addr,
        /// User, limits, Class and CUI from the Access-Accept (boxed: the
        /// other actions are a few bytes).
        authorization: Box<Authorization>,
    },
    /// Rejected: the portal decides.
    LeaveToPortal {
        /// The client.
        mac: MacAddr,
    },
    /// No server answered; the question is asked again in `in_ms` (for the
    /// log: the policy's timer covers it).
    RetryLater {
        /// The client.
        mac: MacAddr,
        /// Its address.
        ip: Ipv4Addr,
        /// Milliseconds until the next question.
        in_ms: u64,
    },
}

/// Where a client's question stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// To be asked.
    Due,
    /// Asked, no answer yet.
    Asking,
    /// Unanswered; asked again at this time.
    Waiting(UnixMillis),
}

/// One client being asked about.
#[derive(Clone, Debug)]
struct Attempt {
    id: u64,
    ip: Ipv4Addr,
    phase: Phase,
    /// The wait after the next unanswered question.
    backoff_ms: u64,
}

/// The MAC-authentication state machine (see the module docs).
#[derive(Debug)]
pub struct MacAuthPolicy {
    settings: MacAuthPolicySettings,
    /// The address each client was last asked about (renewals of it are
    /// not asked again).
    tried: HashMap<MacAddr, Ipv4Addr>,
    attempts: HashMap<MacAddr, Attempt>,
    due: VecDeque<(MacAddr, u64)>,
    timers: BTreeMap<(UnixMillis, u64), MacAddr>,
    /// Questions handed out and not yet answered (stale ones included: they
    /// still hold a RADIUS identifier).
    asking: HashSet<u64>,
    actions: VecDeque<MacAuthAction>,
    next_id: u64,
    dropped: u64,
}

impl MacAuthPolicy {
    /// A policy following no client yet.
    pub fn new(settings: MacAuthPolicySettings) -> MacAuthPolicy {
        MacAuthPolicy {
            settings,
            tried: HashMap::new(),
            attempts: HashMap::new(),
            due: VecDeque::new(),
            timers: BTreeMap::new(),
            asking: HashSet::new(),
            actions: VecDeque::new(),
            next_id: 0,
            dropped: 0,
        }
    }

    /// A client to look at. A renewal of the address last asked about, or
    /// a trigger for a question already open for the same address, changes
    /// nothing; a new address replaces the open question.
    pub fn handle_trigger(&mut self, trigger: MacAuthTrigger) {
        let (mac, ip) = match trigger {
            MacAuthTrigger::Lease(mac, ip) if self.tried.get(&mac) == Some(&ip) => return,
            MacAuthTrigger::Lease(mac, ip) | MacAuthTrigger::Ended(mac, ip) => (mac, ip),
        };
        match self.attempts.get(&mac) {
            Some(a) if a.ip == ip => return,
            None if self.attempts.len() >= self.settings.max_clients => {
                self.dropped += 1;
                return;
            }
            _ => {}
        }
        if self.tried.len() > self.settings.max_clients {
            self.tried.clear();
        }
        self.tried.insert(mac, ip);
        self.start(mac, ip);
    }

    fn start(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        if let Some(Attempt {
            id,
            phase: Phase::Waiting(at),
            ..
        }) = self.attempts.get(&mac)
        {
            self.timers.remove(&(*at, *id));
        }
        let id = self.next_id;
        self.next_id += 1;
        let attempt = Attempt {
            id,
            ip,
            phase: Phase::Due,
            backoff_ms: self.settings.first_retry_ms,
        };
        self.attempts.insert(mac, attempt);
        self.due.push_back((mac, id));
    }

    /// The next Access-Request to send, while fewer than `max_asking` are
    /// open.
    pub fn poll_request(&mut self) -> Option<MacAuthRequest> {
        if self.asking.len() >= self.settings.max_asking {
            return None;
        }
        while let Some((mac, id)) = self.due.pop_front() {
            let Some(a) = self.attempts.get_mut(&mac) else {
                continue;
            };
            if a.id != id || a.phase != Phase::Due {
                continue;
            }
            a.phase = Phase::Asking;
            self.asking.insert(id);
            return Some(MacAuthRequest {
                mac,
                ip: a.ip,
                attempt: id,
            });
        }
        None
    }

    /// What came of a request. An answer to a question since replaced (the
    /// client got another address) is ignored.
    pub fn handle_answer(&mut self, req: MacAuthRequest, answer: MacAuthAnswer, now: UnixMillis) {
        self.asking.remove(&req.attempt);
        let mac = req.mac;
        match self.attempts.get(&mac) {
            Some(a) if a.id == req.attempt && a.phase == Phase::Asking => {}
            _ => return,
        }
        let ip = req.ip;
        match answer {
            MacAuthAnswer::Accept(reply) => {
                self.attempts.remove(&mac);
                let authorization = Box::new(mac_authorization(mac, &reply));
                self.actions.push_back(MacAuthAction::Authorize {
                    mac,
                    ip,
                    authorization,
                });
            }
            MacAuthAnswer::Reject => {
                self.attempts.remove(&mac);
                self.actions.push_back(MacAuthAction::LeaveToPortal { mac });
            }
            MacAuthAnswer::NotNeeded => {
                self.attempts.remove(&mac);
            }
            MacAuthAnswer::Unreachable => self.retry_later(mac, now),
        }
    }

    fn retry_later(&mut self, mac: MacAddr, now: UnixMillis) {
        let max = self.settings.max_retry_ms;
        let Some(a) = self.attempts.get_mut(&mac) else {
            return;
        };
        let in_ms = a.backoff_ms;
        let at = now.saturating_add(in_ms);
        a.phase = Phase::Waiting(at);
        a.backoff_ms = in_ms.saturating_mul(2).min(max);
        self.timers.insert((at, a.id), mac);
        self.actions.push_back(MacAuthAction::RetryLater {
            mac,
            ip: a.ip,
            in_ms,
        });
    }

    /// The next thing to do with a client.
    pub fn poll_action(&mut self) -> Option<MacAuthAction> {
        self.actions.pop_front()
    }

    /// When [`MacAuthPolicy::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    /// Questions due again at `now` become requests.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, id), mac) = entry.remove_entry();
            if let Some(a) = self.attempts.get_mut(&mac) {
                if a.id == id && matches!(a.phase, Phase::Waiting(_)) {
                    a.phase = Phase::Due;
                    self.due.push_back((mac, id));
                }
            }
        }
    }

    /// Clients followed (asking or waiting to ask again).
    pub fn following(&self) -> usize {
        self.attempts.len()
    }

    /// Triggers dropped because `max_clients` were followed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Counters, EndedSession};

    const T0: UnixMillis = 1_700_000_000_000;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([2, 0, b[0], b[1], b[2], b[3]])
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, n)
    }

    fn policy() -> MacAuthPolicy {
        MacAuthPolicy::new(MacAuthPolicySettings::default())
    }

    fn requests(p: &mut MacAuthPolicy) -> Vec<MacAuthRequest> {
        std::iter::from_fn(|| p.poll_request()).collect()
    }

    fn accept() -> MacAuthAnswer {
        MacAuthAnswer::Accept(Box::new(ReplyLimits {
            session_timeout: Some(600),
            ..ReplyLimits::default()
        }))
    }

    fn ended(user: Option<String>, reason: EndReason) -> Event {
        Event::SessionEnded(EndedSession {
            ipv6: vec![],
            mac: MacAddr([2, 0, 0, 0, 0, 7]),
            ip: Ipv4Addr::new(10, 1, 0, 7),
            session_id: "x".into(),
            user,
            started: 0,
            ended: 1,
            counters: Counters::default(),
            limits: Default::default(),
            last_active: 0,
            reason,
            class: vec![],
            cui: None,
        })
    }

    #[test]
    fn mac_sessions_that_run_out_are_authenticated_again() {
        let mac_user = Some("02-00-00-00-00-07".to_string());
        assert!(matches!(
            mac_auth_trigger(&ended(mac_user.clone(), EndReason::SessionTimeout)),
            Some(MacAuthTrigger::Ended(..))
        ));
        for reason in [
            EndReason::UserRequest,
            EndReason::AdminReset,
            EndReason::NasReboot,
        ] {
            assert!(
                mac_auth_trigger(&ended(mac_user.clone(), reason)).is_none(),
                "{reason}"
            );
        }
        assert!(
            mac_auth_trigger(&ended(Some("alice".into()), EndReason::SessionTimeout)).is_none()
        );
    }

    #[test]
    fn an_accept_logs_the_client_in_and_a_renewal_asks_nothing() {
        let mut p = policy();
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        let [req] = requests(&mut p)[..] else {
            panic!("one request")
        };
        assert_eq!((req.mac, req.ip), (mac(1), ip(1)));
        p.handle_answer(req, accept(), T0);
        match p.poll_action() {
            Some(MacAuthAction::Authorize {
                mac: m,
                ip: i,
                authorization,
            }) => {
                assert_eq!((m, i), (mac(1), ip(1)));
                assert_eq!(authorization.user.as_deref(), Some("02-00-00-00-00-01"));
                assert_eq!(authorization.limits.session_timeout, Some(600));
            }
            other => panic!("{other:?}"),
        }
        assert!(p.poll_action().is_none());
        assert_eq!((p.following(), p.poll_timeout()), (0, None));
        // A renewal of the same lease is not asked about again; a new
        // address is, and so is a session that ran out.
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        assert!(requests(&mut p).is_empty());
        p.handle_trigger(MacAuthTrigger::Ended(mac(1), ip(1)));
        assert_eq!(requests(&mut p).len(), 1);
    }

    #[test]
    fn a_reject_leaves_the_client_to_the_portal() {
        let mut p = policy();
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        let req = p.poll_request().unwrap();
        p.handle_answer(req, MacAuthAnswer::Reject, T0);
        assert!(matches!(
            p.poll_action(),
            Some(MacAuthAction::LeaveToPortal { mac: m }) if m == mac(1)
        ));
        assert_eq!((p.following(), p.poll_timeout()), (0, None));
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        assert!(requests(&mut p).is_empty(), "no second question per lease");
    }

    #[test]
    fn unanswered_questions_are_asked_again_backing_off_to_five_minutes() {
        let mut p = policy();
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let req = p.poll_request().expect("asked");
            assert_eq!(p.poll_request(), None, "one question per client");
            p.handle_answer(req, MacAuthAnswer::Unreachable, now);
            let Some(MacAuthAction::RetryLater { in_ms, .. }) = p.poll_action() else {
                panic!("retry announced")
            };
            let at = p.poll_timeout().expect("a timer");
            assert_eq!(at, now + in_ms);
            waits.push(in_ms / 1000);
            // Nothing is asked before the time.
            p.handle_timeout(at - 1);
            assert_eq!(p.poll_request(), None);
            now = at;
            p.handle_timeout(now);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn asking_stops_once_the_client_is_gone_or_logged_in() {
        let mut p = policy();
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        let req = p.poll_request().unwrap();
        p.handle_answer(req, MacAuthAnswer::Unreachable, T0);
        let _ = p.poll_action();
        p.handle_timeout(p.poll_timeout().unwrap());
        let req = p.poll_request().unwrap();
        p.handle_answer(req, MacAuthAnswer::NotNeeded, T0 + 10_000);
        assert!(p.poll_action().is_none());
        assert_eq!((p.following(), p.poll_timeout()), (0, None));
        assert_eq!(p.poll_request(), None);
    }

    #[test]
    fn duplicate_triggers_open_one_question_and_a_new_address_replaces_it() {
        let mut p = policy();
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(1)));
        p.handle_trigger(MacAuthTrigger::Ended(mac(1), ip(1)));
        let old = p.poll_request().unwrap();
        p.handle_trigger(MacAuthTrigger::Ended(mac(1), ip(1)));
        assert_eq!(p.poll_request(), None);
        // The client moved while the question was open: ask about the new
        // address; the old answer counts for nothing.
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(2)));
        let new = p.poll_request().unwrap();
        assert_eq!(new.ip, ip(2));
        p.handle_answer(old, accept(), T0);
        assert!(p.poll_action().is_none());
        assert_eq!(p.following(), 1);
        // A move while waiting to ask again drops the old timer.
        p.handle_answer(new, MacAuthAnswer::Unreachable, T0);
        let _ = p.poll_action();
        assert!(p.poll_timeout().is_some());
        p.handle_trigger(MacAuthTrigger::Lease(mac(1), ip(3)));
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.poll_request().map(|r| r.ip), Some(ip(3)));
    }

    #[test]
    fn a_flood_of_triggers_is_bounded() {
        let settings = MacAuthPolicySettings {
            max_clients: 100,
            max_asking: 8,
            ..MacAuthPolicySettings::default()
        };
        let mut p = MacAuthPolicy::new(settings);
        for n in 0..10_000 {
            p.handle_trigger(MacAuthTrigger::Lease(mac(n), ip((n % 250) as u8)));
        }
        assert_eq!(p.following(), 100);
        assert_eq!(p.dropped(), 9_900);
        assert!(p.tried.len() <= 101);
        let open = requests(&mut p);
        assert_eq!(open.len(), 8, "at most max_asking questions at once");
        // An answer frees a slot for the next question.
        p.handle_answer(open[0], MacAuthAnswer::Reject, T0);
        assert_eq!(requests(&mut p).len(), 1);
        // A dropped client was not remembered: its renewal asks once there
        // is room.
        let late = mac(9_999);
        p.handle_trigger(MacAuthTrigger::Lease(late, ip(249)));
        assert_eq!(p.following(), 100);
        assert_eq!(p.dropped(), 9_900);
        assert!(p.tried.contains_key(&late));
    }

    #[test]
    fn the_memory_of_clients_asked_is_bounded() {
        let settings = MacAuthPolicySettings {
            max_clients: 10,
            ..MacAuthPolicySettings::default()
        };
        let mut p = MacAuthPolicy::new(settings);
        for n in 0..1_000 {
            p.handle_trigger(MacAuthTrigger::Lease(mac(n), ip(1)));
            let req = p.poll_request().unwrap();
            p.handle_answer(req, MacAuthAnswer::Reject, T0);
            assert!(p.tried.len() <= 11);
        }
        assert_eq!(p.following(), 0);
    }
}
