//! The machine-readable answers: CoovaChilli's `/json/…` documents (what
//! ChilliLibrary.js reads) and the RFC 8908 captive-portal API.

use serde_json::{json, Map, Value};

use super::uam::{hex, Challenge};
use crate::session::{Client, SessionState};
use crate::UnixMillis;

/// What the JSON documents need besides the client.
#[derive(Clone, Debug, Default)]
pub struct JsonContext {
    /// `location.name` (the NAS id).
    pub nas_id: String,
    /// The client's live challenge, when it is not logged in.
    pub challenge: Option<Challenge>,
    /// `redir.originalURL`.
    pub original_url: Option<String>,
    /// `redir.redirectionURL` (the success URL).
    pub redirection_url: Option<String>,
    /// `redir.logoutURL`.
    pub logout_url: String,
    /// A message for the guest (after a login attempt).
    pub message: Option<String>,
    /// How far the wall clock is from engine time, ms (the shell's
    /// `io::clock::clock_step_ms`): engine times become the dates shown
    /// (`session.startTime`) with it, so a step of the system clock moves
    /// the date, not the durations.
    pub wall_offset_ms: i64,
}

/// True if `name` may be used as a JSONP callback (an identifier path such
/// as `chilliJSON.reply`, at most 64 characters).
pub fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.')
}

fn secs_since(t: UnixMillis, now: UnixMillis) -> u64 {
    now.saturating_sub(t) / 1000
}

/// CoovaChilli's status document (`/json/status`, and the answer to
/// `/json/logon` and `/json/logoff`): `clientState` 0 (not logged in) or 1,
/// `challenge` while not logged in, `redir`, and `session` plus
/// `accounting` while logged in. Octets follow RADIUS: input = sent by the
/// client; the low 32 bits, with the high bits in the gigaword fields.
pub fn chilli_status(client: &Client, ctx: &JsonContext, now: UnixMillis) -> Value {
    let authorized = client.state == SessionState::Authorized;
    let mut doc = Map::new();
    doc.insert("version".into(), json!("1.0"));
    doc.insert("clientState".into(), json!(u8::from(authorized)));
    if let Some(m) = &ctx.message {
        doc.insert("message".into(), json!(m));
    }
    if !authorized {
        if let Some(c) = &ctx.challenge {
            doc.insert("challenge".into(), json!(hex(c)));
        }
    }
    doc.insert("location".into(), json!({ "name": ctx.nas_id }));
    doc.insert(
        "redir".into(),
        json!({
            "originalURL": ctx.original_url.clone().unwrap_or_default(),
            "redirectionURL": ctx.redirection_url.clone().unwrap_or_default(),
            "logoutURL": ctx.logout_url,
            "ipAddress": client.ip.to_string(),
            "macAddress": client.mac.to_dashed(),
        }),
    );
    if authorized {
        let start = client.authorized_at.unwrap_or(now);
        let start_wall = start.saturating_add_signed(ctx.wall_offset_ms);
        doc.insert("session".into(), session_doc(client, start_wall));
        let c = &client.counters;
        doc.insert(
            "accounting".into(),
            json!({
                "sessionTime": secs_since(start, now),
                "idleTime": secs_since(client.last_active.max(start), now),
                "inputOctets": c.octets_in & 0xffff_ffff,
                "outputOctets": c.octets_out & 0xffff_ffff,
                "inputGigawords": c.octets_in >> 32,
                "outputGigawords": c.octets_out >> 32,
                "viewPoint": "nas",
            }),
        );
    }
    Value::Object(doc)
}

/// The `session` object of a logged-in client that started at wall time
/// `start_wall`.
fn session_doc(client: &Client, start_wall: UnixMillis) -> Value {
    let l = &client.limits;
    let mut session = Map::new();
    session.insert("sessionId".into(), json!(client.session_id));
    session.insert(
        "userName".into(),
        json!(client.user.clone().unwrap_or_default()),
    );
    session.insert("startTime".into(), json!(start_wall / 1000));
    session.insert(
        "sessionTimeout".into(),
        json!(l.session_timeout.unwrap_or(0)),
    );
    session.insert("idleTimeout".into(), json!(l.idle_timeout.unwrap_or(0)));
    for (k, v) in [
        ("maxInputOctets", l.max_input_octets),
        ("maxOutputOctets", l.max_output_octets),
        ("maxTotalOctets", l.max_total_octets),
    ] {
        if let Some(v) = v {
            session.insert(k.into(), json!(v));
        }
    }
    Value::Object(session)
}

/// Seconds left of the client's session, if it has a session timeout or a
/// terminate time (the earlier).
pub fn seconds_remaining(client: &Client, now: UnixMillis) -> Option<u64> {
    let limits = &client.limits;
    let start = client.authorized_at.unwrap_or(now);
    let by_timeout = limits
        .session_timeout
        .map(|t| u64::from(t).saturating_sub(secs_since(start, now)));
    let by_terminate = limits.terminate_at.map(|t| t.saturating_sub(now) / 1000);
    by_timeout.into_iter().chain(by_terminate).min()
}

/// Octets left of the client's session, if it has a data limit (the
/// tightest of the three).
pub fn bytes_remaining(client: &Client) -> Option<u64> {
    let limits = &client.limits;
    let c = &client.counters;
    [
        limits
            .max_total_octets
            .map(|m| m.saturating_sub(c.octets_in + c.octets_out)),
        limits
            .max_input_octets
            .map(|m| m.saturating_sub(c.octets_in)),
        limits
            .max_output_octets
            .map(|m| m.saturating_sub(c.octets_out)),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// The RFC 8908 API document (`application/captive+json`).
pub fn captive_api(
    client: &Client,
    user_portal_url: &str,
    venue_info_url: Option<&str>,
    now: UnixMillis,
) -> Value {
    let authorized = client.state == SessionState::Authorized;
    let mut doc = Map::new();
    doc.insert("captive".into(), json!(!authorized));
    doc.insert("user-portal-url".into(), json!(user_portal_url));
    if let Some(v) = venue_info_url {
        doc.insert("venue-info-url".into(), json!(v));
    }
    if authorized {
        if let Some(s) = seconds_remaining(client, now) {
            doc.insert("seconds-remaining".into(), json!(s));
        }
        if let Some(b) = bytes_remaining(client) {
            doc.insert("bytes-remaining".into(), json!(b));
        }
        doc.insert("can-extend-session".into(), json!(false));
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Counters, SessionLimits};
    use core::net::Ipv4Addr;

    fn client(authorized: bool) -> Client {
        let mut c = Client::leased(
            "02:00:00:00:00:17".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 23),
            "66500000000000aa".into(),
            9_000_000,
            1_000_000,
        );
        if authorized {
            c.state = SessionState::Authorized;
            c.user = Some("alice".to_string());
            c.authorized_at = Some(2_000_000);
        }
        c.last_active = 2_050_000;
        c.last_seen = 2_050_000;
        c.counters = Counters {
            octets_in: (1 << 32) + 5,
            octets_out: 700,
            packets_in: 3,
            packets_out: 4,
        };
        c.limits = SessionLimits {
            session_timeout: Some(3600),
            max_total_octets: Some(10_000_000_000),
            ..SessionLimits::default()
        };
        c
    }

    fn ctx() -> JsonContext {
        JsonContext {
            nas_id: "lassi".into(),
            challenge: Some([0xab; 16]),
            original_url: Some("http://example.test/".into()),
            redirection_url: None,
            logout_url: "http://10.1.0.1:3990/logoff".into(),
            message: None,
            wall_offset_ms: 0,
        }
    }

    #[test]
    fn chilli_status_not_logged_in() {
        let v = chilli_status(&client(false), &ctx(), 2_100_000);
        assert_eq!(
            v,
            json!({
                "version": "1.0",
                "clientState": 0,
                "challenge": "abababababababababababababababab",
                "location": { "name": "lassi" },
                "redir": {
                    "originalURL": "http://example.test/",
                    "redirectionURL": "",
                    "logoutURL": "http://10.1.0.1:3990/logoff",
                    "ipAddress": "10.1.0.23",
                    "macAddress": "02-00-00-00-00-17"
                }
            })
        );
    }

    #[test]
    fn chilli_status_logged_in() {
        let v = chilli_status(&client(true), &ctx(), 2_100_000);
        assert_eq!(v["clientState"], 1);
        assert!(v.get("challenge").is_none());
        assert_eq!(
            v["session"],
            json!({
                "sessionId": "66500000000000aa",
                "userName": "alice",
                "startTime": 2000,
                "sessionTimeout": 3600,
                "idleTimeout": 0,
                "maxTotalOctets": 10_000_000_000u64
            })
        );
        assert_eq!(
            v["accounting"],
            json!({
                "sessionTime": 100,
                "idleTime": 50,
                "inputOctets": 5,
                "outputOctets": 700,
                "inputGigawords": 1,
                "outputGigawords": 0,
                "viewPoint": "nas"
            })
        );
    }

    #[test]
    fn rfc8908_documents() {
        let v = captive_api(&client(false), "http://10.1.0.1:3990/", None, 0);
        assert_eq!(
            v,
            json!({ "captive": true, "user-portal-url": "http://10.1.0.1:3990/" })
        );
        let v = captive_api(
            &client(true),
            "http://10.1.0.1:3990/",
            Some("https://venue.example/"),
            2_100_000,
        );
        assert_eq!(
            v,
            json!({
                "captive": false,
                "user-portal-url": "http://10.1.0.1:3990/",
                "venue-info-url": "https://venue.example/",
                "seconds-remaining": 3500,
                "bytes-remaining": 10_000_000_000u64 - (1u64 << 32) - 705,
                "can-extend-session": false
            })
        );
        let mut unlimited = client(true);
        unlimited.limits = SessionLimits::default();
        let v = captive_api(&unlimited, "http://x/", None, 0);
        assert!(v.get("seconds-remaining").is_none() && v.get("bytes-remaining").is_none());
    }

    #[test]
    fn callbacks() {
        for ok in ["cb", "chilliJSON.reply", "$jq_123", "a.b.c"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a..b",
            ".a",
            "a.",
            "alert(1)",
            "a-b",
            &"x".repeat(65),
            "a;b",
        ] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }
}
