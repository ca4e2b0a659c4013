//! RADIUS cryptography, all of it MD5 based: User-Password hiding (RFC 2865
//! §5.2), CHAP (RFC 1994), Request and Response Authenticators (RFC 2865
//! §3, RFC 2866 §3, RFC 5176 §2.3), and Message-Authenticator (HMAC-MD5,
//! RFC 3579 §3.2; RFC 2104 HMAC built here on the `md-5` crate).
//!
//! The signing and checking functions work on encoded packet bytes, because
//! the digests cover the exact wire form.

use md5::{Digest, Md5};

use super::packet::{find_raw_attr, Code, HEADER_LEN};

/// MD5 of the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-MD5 (RFC 2104) of `data` under `key`.
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&md5(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = md5(&[&ipad, data]);
    md5(&[&opad, &inner])
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hides a User-Password (RFC 2865 §5.2): padded with zeros to a multiple
/// of 16 bytes (at most 128), each block XORed with
/// MD5(secret ‖ previous ciphertext block), the first with the Request
/// Authenticator. Passwords longer than 128 bytes are cut at 128.
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let pw = &password[..password.len().min(128)];
    let padded = pw.len().div_ceil(16).max(1) * 16;
    let mut out = vec![0u8; padded];
    out[..pw.len()].copy_from_slice(pw);
    let mut prev: [u8; 16] = *authenticator;
    for chunk in out.chunks_mut(16) {
        let b = md5(&[secret, &prev]);
        for (c, k) in chunk.iter_mut().zip(b.iter()) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    out
}

/// Reverses [`hide_password`]; trailing zero padding is removed. `None` if
/// the length is not a multiple of 16 in 16..=128.
pub fn unhide_password(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    if hidden.is_empty() || hidden.len() % 16 != 0 || hidden.len() > 128 {
        return None;
    }
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: [u8; 16] = *authenticator;
    for chunk in hidden.chunks(16) {
        let b = md5(&[secret, &prev]);
        out.extend(chunk.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev.copy_from_slice(chunk);
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// The CHAP response (RFC 1994 §4.1): MD5(ident ‖ password ‖ challenge).
pub fn chap_response(ident: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    md5(&[&[ident], password, challenge])
}

/// The value of the authenticator field while Message-Authenticator is
/// computed (RFC 3579 §3.2, RFC 5176 §3.1): Access-Request its own random
/// one; responses (Access-Accept/Reject/Challenge, CoA- and
/// Disconnect-ACK/NAK) the request's; Accounting-, CoA- and
/// Disconnect-Request and Accounting-Response sixteen zeros (what
/// FreeRADIUS signs and verifies; [`verify_response`] also accepts the
/// request's authenticator for an Accounting-Response).
fn ma_vector(code: Code, own: &[u8; 16], request_auth: Option<&[u8; 16]>) -> [u8; 16] {
    match code {
        Code::AccessRequest | Code::StatusServer => *own,
        Code::AccessAccept
        | Code::AccessReject
        | Code::AccessChallenge
        | Code::CoaAck
        | Code::CoaNak
        | Code::DisconnectAck
        | Code::DisconnectNak => request_auth.copied().unwrap_or([0; 16]),
        _ => [0; 16],
    }
}

/// Computes the Message-Authenticator of `buf` (whose attribute 80 is at
/// `off`) with the authenticator field temporarily set to `vector`.
fn compute_ma(buf: &[u8], off: usize, vector: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut tmp = buf.to_vec();
    tmp[4..20].copy_from_slice(vector);
    tmp[off + 2..off + 18].fill(0);
    hmac_md5(secret, &tmp)
}

/// Fills in the Message-Authenticator (if the packet carries attribute 80
/// of 16 bytes) and then the authenticator field, for a request lassi sends.
///
/// For Access-Request and Status-Server the authenticator field must
/// already hold the random Request Authenticator (the hidden password
/// depends on it). For Accounting-, CoA- and Disconnect-Request it is
/// computed here: MD5(code ‖ id ‖ length ‖ 16 zeros ‖ attributes ‖ secret).
pub fn sign_request(buf: &mut [u8], secret: &[u8]) {
    if buf.len() < HEADER_LEN {
        return;
    }
    let code = Code::from_u8(buf[0]);
    let own: [u8; 16] = buf[4..20].try_into().expect("16 bytes");
    if let Some((off, 18)) = find_raw_attr(buf, 80) {
        let ma = compute_ma(buf, off, &ma_vector(code, &own, None), secret);
        buf[off + 2..off + 18].copy_from_slice(&ma);
    }
    if !matches!(code, Code::AccessRequest | Code::StatusServer) {
        buf[4..20].fill(0);
        let auth = md5(&[buf, secret]);
        buf[4..20].copy_from_slice(&auth);
    }
}

/// Fills in the Message-Authenticator (if present) and the Response
/// Authenticator MD5(code ‖ id ‖ length ‖ request authenticator ‖
/// attributes ‖ secret) of a response lassi sends (CoA/Disconnect ACK/NAK).
pub fn sign_response(buf: &mut [u8], secret: &[u8], request_auth: &[u8; 16]) {
    if buf.len() < HEADER_LEN {
        return;
    }
    let code = Code::from_u8(buf[0]);
    if let Some((off, 18)) = find_raw_attr(buf, 80) {
        let ma = compute_ma(
            buf,
            off,
            &ma_vector(code, &[0; 16], Some(request_auth)),
            secret,
        );
        buf[off + 2..off + 18].copy_from_slice(&ma);
    }
    buf[4..20].copy_from_slice(request_auth);
    let auth = md5(&[buf, secret]);
    buf[4..20].copy_from_slice(&auth);
}

/// Why a packet failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// Shorter than a header, or its Length field disagrees with the buffer.
    Malformed,
    /// The Request or Response Authenticator is wrong (wrong secret or
    /// forged packet).
    BadAuthenticator,
    /// Message-Authenticator present but wrong, or not 16 bytes.
    BadMessageAuthenticator,
    /// Message-Authenticator absent where it is required.
    MissingMessageAuthenticator,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyError::Malformed => "malformed packet",
            VerifyError::BadAuthenticator => "wrong authenticator",
            VerifyError::BadMessageAuthenticator => "wrong Message-Authenticator",
            VerifyError::MissingMessageAuthenticator => "no Message-Authenticator",
        })
    }
}

impl std::error::Error for VerifyError {}

fn wire_len(buf: &[u8]) -> Result<usize, VerifyError> {
    if buf.len() < HEADER_LEN {
        return Err(VerifyError::Malformed);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if !(HEADER_LEN..=buf.len()).contains(&len) {
        return Err(VerifyError::Malformed);
    }
    Ok(len)
}

fn check_ma(
    buf: &[u8],
    vector: &[u8; 16],
    secret: &[u8],
    required: bool,
) -> Result<(), VerifyError> {
    match find_raw_attr(buf, 80) {
        Some((off, 18)) => {
            let want = compute_ma(buf, off, vector, secret);
            if ct_eq(&want, &buf[off + 2..off + 18]) {
                Ok(())
            } else {
                Err(VerifyError::BadMessageAuthenticator)
            }
        }
        Some(_) => Err(VerifyError::BadMessageAuthenticator),
        None if required => Err(VerifyError::MissingMessageAuthenticator),
        None => Ok(()),
    }
}

/// Verifies a response to the request whose authenticator was
/// `request_auth`: the Response Authenticator, then the
/// Message-Authenticator if present (or if `require_ma`).
pub fn verify_response(
    buf: &[u8],
    secret: &[u8],
    request_auth: &[u8; 16],
    require_ma: bool,
) -> Result<(), VerifyError> {
    let len = wire_len(buf)?;
    let buf = &buf[..len];
    let mut tmp = buf.to_vec();
    tmp[4..20].copy_from_slice(request_auth);
    let want = md5(&[&tmp, secret]);
    if !ct_eq(&want, &buf[4..20]) {
        return Err(VerifyError::BadAuthenticator);
    }
    let code = Code::from_u8(buf[0]);
    let r = check_ma(
        buf,
        &ma_vector(code, &[0; 16], Some(request_auth)),
        secret,
        require_ma,
    );
    if r == Err(VerifyError::BadMessageAuthenticator) && code == Code::AccountingResponse {
        return check_ma(buf, request_auth, secret, require_ma);
    }
    r
}

/// Verifies a request lassi receives (CoA-, Disconnect- or
/// Accounting-Request): the Request Authenticator computed over 16 zeros,
/// and the Message-Authenticator if present (or if `require_ma`).
pub fn verify_request(buf: &[u8], secret: &[u8], require_ma: bool) -> Result<(), VerifyError> {
    let len = wire_len(buf)?;
    let buf = &buf[..len];
    let code = Code::from_u8(buf[0]);
    if !matches!(code, Code::AccessRequest | Code::StatusServer) {
        let mut tmp = buf.to_vec();
        tmp[4..20].fill(0);
        let want = md5(&[&tmp, secret]);
        if !ct_eq(&want, &buf[4..20]) {
            return Err(VerifyError::BadAuthenticator);
        }
    }
    let own: [u8; 16] = buf[4..20].try_into().expect("16 bytes");
    check_ma(buf, &ma_vector(code, &own, None), secret, require_ma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::{attr, Packet};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_md5_rfc2104_vectors() {
        // RFC 2104 appendix / RFC 2202 test cases 1 and 2.
        assert_eq!(
            hmac_md5(&[0x0b; 16], b"Hi There").to_vec(),
            hex("9294727a3638bb1c13f48ef8158bfc9d")
        );
        assert_eq!(
            hmac_md5(b"Jefe", b"what do ya want for nothing?").to_vec(),
            hex("750c783e6ab0b503eaa86e310a5db738")
        );
        // RFC 2202 case 6: key longer than the block.
        assert_eq!(
            hmac_md5(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_vec(),
            hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
        );
    }

    #[test]
    fn rfc2865_section7_1_user_password() {
        // RFC 2865 §7.1: user "nemo", password "arctangent", secret
        // "xyzzy5461", Request Authenticator 0f403f9473978057bd83d5cb98f4227a.
        let auth: [u8; 16] = hex("0f403f9473978057bd83d5cb98f4227a").try_into().unwrap();
        let hidden = hide_password(b"arctangent", b"xyzzy5461", &auth);
        assert_eq!(hidden, hex("0dbe708d93d413ce3196e43f782a0aee"));
        assert_eq!(
            unhide_password(&hidden, b"xyzzy5461", &auth).unwrap(),
            b"arctangent"
        );
    }

    #[test]
    fn multi_block_password_round_trips() {
        let auth = [7u8; 16];
        for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 128] {
            let pw: Vec<u8> = (1..=n as u8).collect();
            let h = hide_password(&pw, b"s3cret", &auth);
            assert_eq!(h.len(), n.div_ceil(16).max(1) * 16);
            assert_eq!(unhide_password(&h, b"s3cret", &auth).unwrap(), pw);
        }
        // Second block chains on the first ciphertext block, not the
        // authenticator: changing block 1 changes block 2's keystream.
        let a = hide_password(&[b'a'; 32], b"k", &auth);
        let b = hide_password(&[[b'b'; 16], [b'a'; 16]].concat(), b"k", &auth);
        assert_ne!(a[16..], b[16..]);
    }

    #[test]
    fn chap_rfc1994() {
        // CHAP with ident 0x7b, password "password" and a 16-byte challenge:
        // the value radclient/FreeRADIUS compute (checked by the peer test).
        let ch = hex("3e3b3a1b0b1a1d1c3f3e3d3c3b3a3938");
        let r = chap_response(0x7b, b"password", &ch);
        assert_eq!(r, md5(&[&[0x7b], b"password", &ch]));
        assert_ne!(r, chap_response(0x7c, b"password", &ch));
    }

    #[test]
    fn sign_and_verify_requests_and_responses() {
        let secret = b"testing123";
        // Accounting-Request with Message-Authenticator.
        let mut p = Packet::new(Code::AccountingRequest, 9);
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16])
            .push_u32(attr::ACCT_STATUS_TYPE, 1);
        let mut b = p.encode().unwrap();
        sign_request(&mut b, secret);
        verify_request(&b, secret, true).unwrap();
        assert_eq!(
            verify_request(&b, b"wrong", false),
            Err(VerifyError::BadAuthenticator)
        );
        // Access-Request: the random authenticator stays; MA is checked.
        let mut p = Packet::new(Code::AccessRequest, 1);
        p.authenticator = [0x42; 16];
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        let mut b = p.encode().unwrap();
        sign_request(&mut b, secret);
        assert_eq!(&b[4..20], &[0x42; 16]);
        verify_request(&b, secret, true).unwrap();
        let mut bad = b.clone();
        bad[25] ^= 1;
        assert_eq!(
            verify_request(&bad, secret, false),
            Err(VerifyError::BadMessageAuthenticator)
        );
        // Access-Accept answering it, MA over the request authenticator.
        let mut r = Packet::new(Code::AccessAccept, 1);
        r.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        let mut rb = r.encode().unwrap();
        sign_response(&mut rb, secret, &[0x42; 16]);
        verify_response(&rb, secret, &[0x42; 16], true).unwrap();
        assert_eq!(
            verify_response(&rb, secret, &[0x43; 16], true),
            Err(VerifyError::BadAuthenticator)
        );
        // Without MA: accepted unless required.
        let mut r = Packet::new(Code::AccessAccept, 1).encode().unwrap();
        sign_response(&mut r, secret, &[0x42; 16]);
        verify_response(&r, secret, &[0x42; 16], false).unwrap();
        assert_eq!(
            verify_response(&r, secret, &[0x42; 16], true),
            Err(VerifyError::MissingMessageAuthenticator)
        );
    }
}
