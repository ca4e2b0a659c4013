//! Codec and crypto checked against packets produced by FreeRADIUS 3.2.1's
//! own tools, captured once (radclient requests, FreeRADIUS responses; see
//! `testdata/README`): lassi must decode them, verify them, and produce the
//! very same bytes when it encodes and signs the same content.

use super::attrs::ReplyLimits;
use super::coa::{CoaKind, CoaOutcome, CoaServer};
use super::crypto::{self, VerifyError};
use super::packet::{attr, Code, Packet};

const SECRET: &[u8] = b"testing123";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("testdata/", $name, ".bin")).as_slice()
    };
}

fn auth(b: &[u8]) -> [u8; 16] {
    b[4..20].try_into().unwrap()
}

/// Decoding then encoding gives the same bytes.
fn round_trips(b: &[u8]) -> Packet {
    let p = Packet::decode(b).unwrap();
    assert_eq!(p.encode().unwrap(), b, "re-encoding {p:?}");
    p
}

#[test]
fn radclient_pap_request() {
    let b = fixture!("pap_accept.req");
    let p = round_trips(b);
    assert_eq!(p.code, Code::AccessRequest);
    crypto::verify_request(b, SECRET, true).unwrap();
    assert_eq!(
        crypto::verify_request(b, b"other", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
    let pw = p.get(attr::USER_PASSWORD).unwrap();
    assert_eq!(
        crypto::unhide_password(pw, SECRET, &p.authenticator).unwrap(),
        b"hello"
    );
    assert_eq!(
        crypto::hide_password(b"hello", SECRET, &p.authenticator),
        pw
    );
    assert_eq!(p.get_string(attr::NAS_IDENTIFIER).unwrap(), "nas1");
    // lassi's signing of the same packet gives radclient's bytes.
    let mut again = p.encode().unwrap();
    let ma = super::packet::find_raw_attr(&again, 80).unwrap().0;
    again[ma + 2..ma + 18].fill(0);
    crypto::sign_request(&mut again, SECRET);
    assert_eq!(again, b);
}

#[test]
fn radclient_multi_block_password() {
    let b = fixture!("pap_long.req");
    let p = round_trips(b);
    let pw = p.get(attr::USER_PASSWORD).unwrap();
    assert_eq!(pw.len(), 48);
    let want = b"a-rather-long-password-over-two-blocks-42";
    assert_eq!(
        crypto::unhide_password(pw, SECRET, &p.authenticator).unwrap(),
        want
    );
    assert_eq!(crypto::hide_password(want, SECRET, &p.authenticator), pw);
}

#[test]
fn radclient_chap_request() {
    let b = fixture!("chap_accept.req");
    let p = round_trips(b);
    crypto::verify_request(b, SECRET, true).unwrap();
    let chap = p.get(attr::CHAP_PASSWORD).unwrap();
    assert_eq!(chap.len(), 17);
    // No CHAP-Challenge: the Request Authenticator is the challenge.
    assert!(p.get(attr::CHAP_CHALLENGE).is_none());
    assert_eq!(
        crypto::chap_response(chap[0], b"hello", &p.authenticator),
        chap[1..]
    );
}

#[test]
fn freeradius_access_accept_without_and_with_message_authenticator() {
    let req = fixture!("pap_accept.req");
    let b = fixture!("pap_accept.resp");
    crypto::verify_response(b, SECRET, &auth(req), false).unwrap();
    // FreeRADIUS 3.2.1 adds no Message-Authenticator unless told to.
    assert_eq!(
        crypto::verify_response(b, SECRET, &auth(req), true),
        Err(VerifyError::MissingMessageAuthenticator)
    );
    assert_eq!(
        crypto::verify_response(b, SECRET, &[0; 16], false),
        Err(VerifyError::BadAuthenticator)
    );
    let p = round_trips(b);
    let l = ReplyLimits::from_packet(&p, false);
    assert_eq!(l.session_timeout, Some(3600));
    assert_eq!(l.bandwidth_max_down_bps, Some(2_000_000));
    assert_eq!(l.max_total_octets, Some((3 << 32) + 5));
    assert_eq!(l.class, vec![b"cls-bob".to_vec()]);

    for (req, resp, code) in [
        (
            fixture!("pap_accept_ma.req"),
            fixture!("pap_accept_ma.resp"),
            Code::AccessAccept,
        ),
        (
            fixture!("pap_reject_ma.req"),
            fixture!("pap_reject_ma.resp"),
            Code::AccessReject,
        ),
    ] {
        let p = round_trips(resp);
        assert_eq!(p.code, code);
        crypto::verify_response(resp, SECRET, &auth(req), true).unwrap();
        // lassi computes the same Message-Authenticator and authenticator.
        let mut again = p.encode().unwrap();
        let ma = super::packet::find_raw_attr(&again, 80).unwrap().0;
        again[ma + 2..ma + 18].fill(0);
        crypto::sign_response(&mut again, SECRET, &auth(req));
        assert_eq!(again, resp);
        // A flipped bit anywhere is caught.
        for i in [1usize, 5, 25, resp.len() - 3] {
            let mut bad = resp.to_vec();
            bad[i] ^= 0x10;
            assert!(crypto::verify_response(&bad, SECRET, &auth(req), true).is_err());
        }
    }
}

#[test]
fn radclient_accounting_request() {
    let b = fixture!("acct_stop.req");
    let p = round_trips(b);
    crypto::verify_request(b, SECRET, false).unwrap();
    assert_eq!(
        crypto::verify_request(b, b"nope", false),
        Err(VerifyError::BadAuthenticator)
    );
    assert_eq!(p.get_u32(attr::ACCT_STATUS_TYPE), Some(2));
    assert_eq!(p.get_u32(attr::ACCT_INPUT_GIGAWORDS), Some(2));
    assert_eq!(p.get_u32(attr::ACCT_TERMINATE_CAUSE), Some(4));
    assert_eq!(p.get_string(attr::WISPR_LOCATION_NAME).unwrap(), "Cafe");
    // lassi's Request Authenticator over the same content is radclient's.
    let mut again = p.clone();
    again.authenticator = [0; 16];
    let mut bytes = again.encode().unwrap();
    crypto::sign_request(&mut bytes, SECRET);
    assert_eq!(bytes, b);
    let resp = fixture!("acct_stop.resp");
    crypto::verify_response(resp, SECRET, &auth(b), false).unwrap();
    assert_eq!(Packet::decode(resp).unwrap().code, Code::AccountingResponse);
}

#[test]
fn radclient_coa_and_disconnect() {
    let server = CoaServer::for_client("127.0.0.1".parse().unwrap(), b"coasecret", None);
    // Recorded radclient requests carry no Event-Timestamp.
    let now = 1_800_000_000;
    let from = "127.0.0.1:5000".parse().unwrap();
    let CoaOutcome::Request(r) = server.handle(from, fixture!("coa.req"), now) else {
        panic!("CoA refused")
    };
    assert_eq!(r.kind, CoaKind::Coa);
    assert_eq!(r.matcher.user.as_deref(), Some("bob"));
    assert_eq!(r.changes.session_timeout, Some(120));
    assert_eq!(r.changes.max_total_octets, Some(10));
    let CoaOutcome::Request(d) = server.handle(from, fixture!("disconnect.req"), now) else {
        panic!("Disconnect refused")
    };
    assert_eq!(d.kind, CoaKind::Disconnect);
    assert_eq!(d.matcher.mac, Some("02:00:0a:01:00:17".parse().unwrap()));
    let mut wrong = server.clone();
    wrong.clients[0].secret = b"x".to_vec();
    assert!(matches!(
        wrong.handle(from, fixture!("disconnect.req"), now),
        CoaOutcome::Drop(_)
    ));
}
