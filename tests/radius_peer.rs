//! lassi's RADIUS client, accounting spool and CoA listener against the real
//! peer: private FreeRADIUS 3.2 instances (`freeradius -f -l stdout -d
//! CONFDIR`) on loopback with unique ports, and `radclient` for CoA and
//! Disconnect. Nothing leaves loopback; every FreeRADIUS is stopped by PID
//! (its `Proc` guard) and every temp directory removed.
//!
//! The FreeRADIUS clients require Message-Authenticator from lassi
//! (`require_message_authenticator = yes`), and the server adds one to its
//! replies (post-auth `update reply`) except for user `nomabob`, which
//! shows lassi dropping unsigned replies when it requires them.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lassi::radius::attrs::{
    AccessCredentials, AccessRequest, AcctRecord, AcctSession, TerminateCause,
};
use lassi::radius::coa::{CoaKind, CoaReply, ErrorCause};
use lassi::radius::crypto::chap_response;
use lassi::radius::service::{
    AccessAnswer, CoaSettings, RadiusHandle, RadiusService, RadiusSettings, ServerConfig,
};
use lassi::radius::MacAuthSettings;
use lassi::session::Counters;
use lassi_lab::netns::tail;
use lassi_lab::radius::{FreeRadius, FreeRadiusOptions, RadiusClient};
use lassi_lab::unique_name;

const SECRET: &str = "testing123";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A loopback UDP port nobody uses right now.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique_name(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const USERS: &str = r#"
bob	Cleartext-Password := "hello"
	Session-Timeout = 3600,
	Acct-Interim-Interval = 300,
	WISPr-Bandwidth-Max-Down = 2000000,
	ChilliSpot-Bandwidth-Max-Up = 256,
	ChilliSpot-Max-Total-Octets = 5,
	CoovaChilli-Max-Total-Gigawords = 3,
	ChilliSpot-Max-Input-Gigawords = 1,
	Class = "cls-bob"

nomabob	Cleartext-Password := "hello"
	Session-Timeout = 60

mallory	Auth-Type := Reject
	Reply-Message = "Go away"

"02-00-0A-01-00-17@mac"	Cleartext-Password := "macpw"
	Idle-Timeout = 600
"#;

/// A private FreeRADIUS on 127.0.0.1 with unique ports (the lab's harness,
/// `lassi_lab::radius`, on loopback). Replies to `nomabob` are unsigned.
fn configure(tag: &str) -> FreeRadius {
    let opts = FreeRadiusOptions {
        listen: LOCALHOST,
        auth_port: free_port(),
        acct_port: free_port(),
        clients: vec![RadiusClient {
            addr: "127.0.0.1".into(),
            secret: SECRET.into(),
            require_message_authenticator: true,
        }],
        users: USERS.into(),
        unsigned_users: vec!["nomabob".into()],
        sql: None,
        debug: false,
    };
    FreeRadius::configure_temp(tag, opts).expect("configuring FreeRADIUS")
}

fn server(fr: &FreeRadius) -> ServerConfig {
    ServerConfig {
        addr: LOCALHOST,
        auth_port: fr.options().auth_port,
        acct_port: fr.options().acct_port,
        secret: SECRET.into(),
    }
}

fn settings(servers: Vec<ServerConfig>, spool: &Path) -> RadiusSettings {
    let mut s = RadiusSettings::new(servers, spool.to_path_buf());
    s.timeout = Duration::from_millis(300);
    s.max_backoff = Duration::from_millis(600);
    s.retries = 1;
    s.dead_time = Duration::from_secs(30);
    s.spool_retry = Duration::from_millis(500);
    s.nas_identifier = Some("lassi-test".into());
    s.nas_ip = Some(Ipv4Addr::new(192, 0, 2, 1));
    s.nas_mac = Some("02:00:00:00:00:01".parse().unwrap());
    s.location_name = Some("Cafe".into());
    s.mac_auth = MacAuthSettings {
        suffix: "@mac".into(),
        password: "macpw".into(),
    };
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn pap(user: &str, pw: &str) -> AccessRequest {
    AccessRequest::pap(
        user,
        pw.as_bytes(),
        "02:00:0a:01:00:17".parse().unwrap(),
        Ipv4Addr::new(10, 1, 0, 23),
        "sess-auth",
        1,
    )
}

#[test]
fn pap_chap_mac_auth_reject_and_reply_attributes() {
    let mut fr = configure("rad-auth");
    fr.start().unwrap();
    let spool = temp_dir("rad-auth-spool");
    rt().block_on(async {
        let (h, _) = RadiusService::start(settings(vec![server(&fr)], &spool))
            .await
            .unwrap();
        // PAP accept, reply attributes decoded from FreeRADIUS's answer
        // (CoovaChilli-Max-Total-Gigawords comes from radius-dicts/).
        let t0 = Instant::now();
        let AccessAnswer::Accept(l) = h.authenticate(pap("bob", "hello")).await else {
            panic!("bob refused\n{}", fr.log())
        };
        eprintln!("PAP accept in {:?}", t0.elapsed());
        assert_eq!(l.session_timeout, Some(3600));
        assert_eq!(l.interim_interval, Some(300));
        assert_eq!(l.bandwidth_max_down_bps, Some(2_000_000));
        assert_eq!(l.bandwidth_max_up_bps, Some(256_000));
        assert_eq!(l.max_total_octets, Some((3 << 32) + 5));
        assert_eq!(l.max_input_octets, Some(1 << 32));
        assert_eq!(l.class, vec![b"cls-bob".to_vec()]);
        // PAP reject, and a reject with Reply-Message.
        assert_eq!(
            h.authenticate(pap("bob", "wrong")).await,
            AccessAnswer::Reject {
                reply_message: None
            }
        );
        assert_eq!(
            h.authenticate(pap("mallory", "x")).await,
            AccessAnswer::Reject {
                reply_message: Some("Go away".into())
            }
        );
        // CHAP as the portal's UAM login sends it: ident 0, own challenge.
        let challenge = *b"0123456789abcdef";
        let mut chap = pap("bob", "");
        chap.credentials = AccessCredentials::Chap {
            ident: 0,
            response: chap_response(0, b"hello", &challenge),
            challenge: challenge.to_vec(),
        };
        assert!(matches!(
            h.authenticate(chap.clone()).await,
            AccessAnswer::Accept(_)
        ));
        if let AccessCredentials::Chap { response, .. } = &mut chap.credentials {
            response[0] ^= 1;
        }
        assert!(matches!(
            h.authenticate(chap).await,
            AccessAnswer::Reject { .. }
        ));
        // MAC authentication.
        let req = h.mac_auth_request(
            "02:00:0a:01:00:17".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 23),
            "sess-mac",
            2,
        );
        let AccessAnswer::Accept(l) = h.authenticate(req).await else {
            panic!("MAC auth refused\n{}", fr.log())
        };
        assert_eq!(l.idle_timeout, Some(600));
        // A reply without Message-Authenticator is dropped while lassi
        // requires one (BlastRADIUS), and accepted when it does not.
        let before = h.stats().client.missing_message_authenticator;
        assert_eq!(
            h.authenticate(pap("nomabob", "hello")).await,
            AccessAnswer::Unreachable
        );
        assert!(h.stats().client.missing_message_authenticator >= before + 2);
        h.shutdown();
        let mut lax = settings(vec![server(&fr)], &spool);
        lax.require_message_authenticator = false;
        let (h2, _) = RadiusService::start(lax).await.unwrap();
        assert!(matches!(
            h2.authenticate(pap("nomabob", "hello")).await,
            AccessAnswer::Accept(_)
        ));
        // A wrong secret: FreeRADIUS drops the request (its
        // Message-Authenticator check fails), nothing comes back.
        let mut bad = settings(vec![server(&fr)], &spool);
        bad.servers[0].secret = "not-the-secret".into();
        let (h3, _) = RadiusService::start(bad).await.unwrap();
        assert_eq!(
            h3.authenticate(pap("bob", "hello")).await,
            AccessAnswer::Unreachable
        );
        h2.shutdown();
        h3.shutdown();
    });
    let log = fr.log();
    assert!(
        log.contains("Login OK: [bob/"),
        "FreeRADIUS log:\n{}",
        tail(&log, 30)
    );
    // FreeRADIUS verified lassi's Message-Authenticator (it requires one)
    // and complained about the wrong secret's.
    assert!(
        log.contains("Message-Authenticator") || log.contains("shared secret"),
        "{}",
        tail(&log, 30)
    );
    let _ = std::fs::remove_dir_all(&spool);
}

fn session(id: &str) -> AcctSession {
    AcctSession {
        ipv6: vec![],
        session_id: id.into(),
        user_name: Some("bob".into()),
        mac: Some("02:00:0a:01:00:17".parse().unwrap()),
        ip: Some(Ipv4Addr::new(10, 1, 0, 23)),
        nas_port: Some(7),
        started: 1_700_000_000_000,
        class: vec![b"cls-bob".to_vec()],
        cui: None,
    }
}

fn counters(n: u64) -> Counters {
    Counters {
        octets_in: (5u64 << 32) + n,
        octets_out: (2u64 << 32) + 2 * n,
        packets_in: n,
        packets_out: 2 * n,
    }
}

async fn drained(h: &RadiusHandle, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if h.pending_accounting() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
fn accounting_start_interim_stop_land_in_detail() {
    let mut fr = configure("rad-acct");
    fr.start().unwrap();
    let spool = temp_dir("rad-acct-spool");
    rt().block_on(async {
        let (h, _) = RadiusService::start(settings(vec![server(&fr)], &spool))
            .await
            .unwrap();
        let s = session("acct-1");
        let t = s.started;
        h.accounting_on().unwrap();
        h.account(AcctRecord::start(&s, t)).unwrap();
        h.account(AcctRecord::interim(&s, &counters(100), t + 300_000))
            .unwrap();
        h.account(AcctRecord::stop(
            &s,
            &counters(200),
            TerminateCause::IdleTimeout,
            t + 400_000,
        ))
        .unwrap();
        assert!(drained(&h, Duration::from_secs(5)).await, "{:?}", h.stats());
        assert_eq!(h.stats().acct_acked, 4);
        assert!(h.accounting_off(Duration::from_secs(5)).await);
        h.shutdown();
    });
    let d = fr.detail();
    let kinds: Vec<&str> = d.iter().map(|r| r["Acct-Status-Type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Accounting-On",
            "Start",
            "Interim-Update",
            "Stop",
            "Accounting-Off"
        ]
    );
    let stop = &d[3];
    assert_eq!(stop["Acct-Session-Id"], "acct-1");
    assert_eq!(stop["User-Name"], "bob");
    assert_eq!(stop["Acct-Input-Octets"], "200");
    assert_eq!(stop["Acct-Input-Gigawords"], "5");
    assert_eq!(stop["Acct-Output-Octets"], "400");
    assert_eq!(stop["Acct-Output-Gigawords"], "2");
    assert_eq!(stop["Acct-Input-Packets"], "200");
    assert_eq!(stop["Acct-Output-Packets"], "400");
    assert_eq!(stop["Acct-Session-Time"], "400");
    assert_eq!(stop["Acct-Terminate-Cause"], "Idle-Timeout");
    assert_eq!(stop["Calling-Station-Id"], "02-00-0A-01-00-17");
    assert_eq!(stop["Called-Station-Id"], "02-00-00-00-00-01");
    assert_eq!(stop["NAS-Port-Type"], "Wireless-802.11");
    assert_eq!(stop["NAS-Port-Id"], "00000007");
    assert_eq!(stop["NAS-Identifier"], "lassi-test");
    assert_eq!(stop["Framed-IP-Address"], "10.1.0.23");
    assert_eq!(stop["WISPr-Location-Name"], "Cafe");
    assert_eq!(stop["Class"], "0x636c732d626f62");
    // The records were created "in 2023": the delay says so.
    assert!(stop["Acct-Delay-Time"].parse::<u64>().unwrap() > 1000);
    assert_eq!(d[2]["Acct-Input-Octets"], "100");
    assert_eq!(d[2]["Acct-Session-Time"], "300");
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn failover_to_secondary_and_back() {
    let mut a = configure("rad-fo-a");
    let mut b = configure("rad-fo-b");
    a.start().unwrap();
    b.start().unwrap();
    let spool = temp_dir("rad-fo-spool");
    rt().block_on(async {
        let (h, _) = RadiusService::start(settings(vec![server(&a), server(&b)], &spool))
            .await
            .unwrap();
        assert!(matches!(
            h.authenticate(pap("bob", "hello")).await,
            AccessAnswer::Accept(_)
        ));
        assert_eq!(a.log().matches("Login OK").count(), 1);
        a.stop();
        // Primary silent: 300 ms, resend, 600 ms, then the secondary.
        let t0 = Instant::now();
        assert!(matches!(
            h.authenticate(pap("bob", "hello")).await,
            AccessAnswer::Accept(_)
        ));
        let failover = t0.elapsed();
        // The primary is remembered dead: straight to the secondary.
        let t1 = Instant::now();
        assert!(matches!(
            h.authenticate(pap("bob", "hello")).await,
            AccessAnswer::Accept(_)
        ));
        let direct = t1.elapsed();
        eprintln!("failover login {failover:?}, next login {direct:?}");
        assert!(failover >= Duration::from_millis(850), "{failover:?}");
        assert!(failover < Duration::from_millis(2500), "{failover:?}");
        assert!(direct < Duration::from_millis(250), "{direct:?}");
        assert_eq!(b.log().matches("Login OK").count(), 2);
        let st = h.stats().client;
        assert_eq!(st.failovers, 1);
        assert_eq!(st.retransmits, 1);
        // The metrics' per-server view of the same story.
        use lassi::radius::server_stats::RequestKind;
        let servers = h.server_metrics().await.unwrap();
        let [pa, sb] = &servers[..] else {
            panic!("{servers:?}")
        };
        assert_eq!(pa.server, format!("127.0.0.1:{}", a.options().auth_port));
        assert!(!pa.up && sb.up, "{servers:?}");
        let (x, y) = (&pa.stats, &sb.stats);
        assert_eq!((x.requests_of(RequestKind::Access), x.retransmits), (2, 1));
        assert_eq!(
            (x.timeouts, x.responses[0], x.response_time.count),
            (1, 1, 1)
        );
        assert_eq!((y.requests_of(RequestKind::Access), y.retransmits), (2, 0));
        assert_eq!(
            (y.timeouts, y.responses[0], y.response_time.count),
            (0, 2, 2)
        );
        // Accounting fails over too.
        h.account(AcctRecord::start(&session("fo-1"), 1_700_000_000_000))
            .unwrap();
        assert!(drained(&h, Duration::from_secs(5)).await);
        h.shutdown();
    });
    assert_eq!(b.detail().len(), 1);
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn spool_replays_after_outage_and_restart_none_lost_none_duplicated() {
    let mut fr = configure("rad-spool");
    let spool = temp_dir("rad-spool-dir");
    let t = 1_700_000_000_000;
    let (s1, s2) = (session("sp-1"), session("sp-2"));
    rt().block_on(async {
        // RADIUS down: everything is spooled, nothing is lost.
        let (h, _) = RadiusService::start(settings(vec![server(&fr)], &spool))
            .await
            .unwrap();
        h.accounting_on().unwrap();
        h.account(AcctRecord::start(&s1, t)).unwrap();
        h.account(AcctRecord::start(&s2, t + 1)).unwrap();
        for i in 1..=3 {
            h.account(AcctRecord::interim(&s1, &counters(i), t + i * 60_000))
                .unwrap();
        }
        h.account(AcctRecord::stop(
            &s1,
            &counters(4),
            TerminateCause::UserRequest,
            t + 240_000,
        ))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(h.pending_accounting(), 7);
        assert!(h.stats().acct_unanswered >= 1);
        // lassi stops (restart): the spool stays on disk.
        h.shutdown();
    });
    let files = std::fs::read_dir(&spool).unwrap().count();
    assert_eq!(files, 7);
    rt().block_on(async {
        let (h, _) = RadiusService::start(settings(vec![server(&fr)], &spool))
            .await
            .unwrap();
        assert_eq!(h.pending_accounting(), 7);
        h.account(AcctRecord::stop(
            &s2,
            &counters(9),
            TerminateCause::LostCarrier,
            t + 300_000,
        ))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        // RADIUS comes back: the spool drains.
        fr.start().unwrap();
        let t0 = Instant::now();
        assert!(
            drained(&h, Duration::from_secs(10)).await,
            "{:?}",
            h.stats()
        );
        eprintln!(
            "spool of 8 drained {:?} after FreeRADIUS came back",
            t0.elapsed()
        );
        h.shutdown();
    });
    let d = fr.detail();
    let seen: Vec<(String, String, String)> = d
        .iter()
        .map(|r| {
            (
                r.get("Acct-Session-Id").unwrap_or_default().to_string(),
                r["Acct-Status-Type"].clone(),
                r.get("Acct-Input-Octets").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 8, "none missing, none duplicated: {seen:#?}");
    assert_eq!(seen[0].1, "Accounting-On", "the barrier goes first");
    let of = |id: &str| -> Vec<(String, String)> {
        seen.iter()
            .filter(|s| s.0 == id)
            .map(|s| (s.1.clone(), s.2.clone()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        of("sp-1"),
        vec![
            pair("Start", ""),
            pair("Interim-Update", "1"),
            pair("Interim-Update", "2"),
            pair("Interim-Update", "3"),
            pair("Stop", "4"),
        ],
        "in order per session"
    );
    assert_eq!(of("sp-2"), vec![pair("Start", ""), pair("Stop", "9")]);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&spool);
}

/// Runs radclient (blocking) and returns what it printed.
fn radclient(port: u16, kind: &str, secret: &str, attrs: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "2"])
        .arg(format!("127.0.0.1:{port}"))
        .args([kind, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient (apt-get install freeradius-utils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn coa_and_disconnect_from_radclient() {
    let spool = temp_dir("rad-coa-spool");
    let port = free_port();
    let mut s = settings(Vec::new(), &spool);
    s.coa = Some(CoaSettings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        clients: vec![(LOCALHOST, "coasecret".into())],
        ..Default::default()
    });
    rt().block_on(async {
        let (h, rx) = RadiusService::start(s).await.unwrap();
        let mut rx = rx.unwrap();
        // The daemon's side: bob's session exists, nobody else's.
        let daemon = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(call) = rx.recv().await {
                let r = &call.request;
                let found = r.matcher.matches_fields(
                    Some("bob"),
                    "sess-9",
                    "02:00:0a:01:00:17".parse().unwrap(),
                    Ipv4Addr::new(10, 1, 0, 23),
                );
                seen.push((r.kind, r.changes.session_timeout, found));
                call.reply(if found {
                    CoaReply::Ack
                } else {
                    CoaReply::Nak(ErrorCause::SessionContextNotFound)
                });
            }
            seen
        });
        let rc = |kind: &'static str, secret: &'static str, attrs: &'static str| {
            tokio::task::spawn_blocking(move || radclient(port, kind, secret, attrs))
        };
        let out = rc("disconnect", "coasecret", "User-Name=bob\n")
            .await
            .unwrap();
        assert!(out.contains("Received Disconnect-ACK"), "{out}");
        let out = rc(
            "disconnect",
            "coasecret",
            "Calling-Station-Id=02-00-0A-01-00-17,Message-Authenticator=0x00\n",
        )
        .await
        .unwrap();
        assert!(out.contains("Received Disconnect-ACK"), "{out}");
        let out = rc(
            "coa",
            "coasecret",
            "Acct-Session-Id=sess-9,Session-Timeout=60,WISPr-Bandwidth-Max-Down=1000000\n",
        )
        .await
        .unwrap();
        assert!(out.contains("Received CoA-ACK"), "{out}");
        let out = rc("disconnect", "coasecret", "User-Name=alice\n")
            .await
            .unwrap();
        assert!(out.contains("Received Disconnect-NAK"), "{out}");
        assert!(out.contains("Session-Context-Not-Found"), "{out}");
        let out = rc("coa", "coasecret", "User-Name=bob,Framed-Pool=\"p\"\n")
            .await
            .unwrap();
        assert!(out.contains("Received CoA-NAK"), "{out}");
        assert!(out.contains("Unsupported-Attribute"), "{out}");
        let out = rc("coa", "coasecret", "Session-Timeout=5\n").await.unwrap();
        assert!(out.contains("Missing-Attribute"), "{out}");
        // Wrong secret: silently dropped.
        let out = rc("disconnect", "wrongsecret", "User-Name=bob\n")
            .await
            .unwrap();
        assert!(out.contains("No reply"), "{out}");
        let st = h.stats();
        assert_eq!(st.coa_acks, 3);
        assert_eq!(st.coa_naks, 3);
        assert!(st.coa_dropped >= 1);
        // The metrics' view: each answer counted under its request's kind.
        use lassi::radius::metrics::{CoaPortKind as K, CoaResult as R};
        let by = |k, r| st.coa_by_kind.get(k, r);
        assert_eq!((by(K::Disconnect, R::Ack), by(K::Coa, R::Ack)), (2, 1));
        assert_eq!((by(K::Disconnect, R::Nak), by(K::Coa, R::Nak)), (1, 2));
        assert_eq!(by(K::Disconnect, R::Dropped), st.coa_dropped);
        assert_eq!(by(K::Coa, R::Dropped), 0);
        h.shutdown();
        // The channel closes with the service; the daemon task then ends.
        let seen = tokio::time::timeout(Duration::from_secs(2), daemon)
            .await
            .expect("CoA channel closed at shutdown")
            .unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.contains(&(CoaKind::Coa, Some(60), true)));
        assert!(seen.contains(&(CoaKind::Disconnect, None, false)));
    });
    let _ = std::fs::remove_dir_all(&spool);
}
