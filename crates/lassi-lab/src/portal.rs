//! Reading lassi's portal as a guest's browser or a UAM login page does:
//! the parameters of a redirect, the challenge of a login page.

use lassi::portal::uam;

/// The query parameters of `url`, percent-decoded, in order (at most 64).
pub fn query(url: &str) -> Vec<(String, String)> {
    uam::parse_query(url.split_once('?').map(|x| x.1).unwrap_or(""), 64)
}

/// Query parameter `k` of `url`, empty when it is absent.
pub fn param(url: &str, k: &str) -> String {
    query(url)
        .into_iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The hidden `challenge` field of one of lassi's own login pages (32 hex
/// digits). Panics when the page has none.
pub fn page_challenge(html: &str) -> String {
    let i = html
        .find("name=\"challenge\" value=\"")
        .unwrap_or_else(|| panic!("no challenge in {html}"))
        + 24;
    html[i..i + 32].to_string()
}

/// The key a UAM login page derives from the `challenge` of redirect `url`
/// and the shared `uam_secret` (for the password XOR and CHAP). Panics
/// when the challenge is not 16 bytes of hex.
pub fn uam_key(url: &str, uam_secret: &str) -> [u8; 16] {
    let c: uam::Challenge = uam::unhex(&param(url, "challenge"))
        .unwrap()
        .try_into()
        .unwrap();
    uam::derived_challenge(&c, Some(uam_secret))
}
