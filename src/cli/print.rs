//! How the operator commands print their answers.

use serde_json::Value;

/// UTC `YYYY-MM-DD HH:MM:SS` from Unix milliseconds (no time-zone database
/// on small routers; operators read UTC in logs anyway).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::logger::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Pretty JSON on stdout.
pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The clients as a table.
pub fn sessions(v: &Value) {
    let empty = Vec::new();
    let clients = v["clients"].as_array().unwrap_or(&empty);
    println!(
        "{:<17}  {:<15}  {:<12}  {:<12}  {:<19}  {:>12}  {:>12}  {:>9}  {:>9}  SESSION ID",
        "MAC",
        "IP",
        "STATE",
        "USER",
        "SESSION START (UTC)",
        "OCTETS IN",
        "OCTETS OUT",
        "PKTS IN",
        "PKTS OUT"
    );
    for c in clients {
        let started = c["authorized_at"]
            .as_u64()
            .map(utc)
            .unwrap_or_else(|| "-".into());
        let k = &c["counters"];
        println!(
            "{:<17}  {:<15}  {:<12}  {:<12}  {:<19}  {:>12}  {:>12}  {:>9}  {:>9}  {}",
            c["mac"].as_str().unwrap_or("?"),
            c["ip"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["user"].as_str().unwrap_or("-"),
            started,
            k["octets_in"],
            k["octets_out"],
            k["packets_in"],
            k["packets_out"],
            c["session_id"].as_str().unwrap_or("-"),
        );
    }
    println!("{} client(s)", clients.len());
}

/// One ended session.
pub fn ended(s: &Value) {
    let secs = s["ended"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(s["started"].as_u64().unwrap_or(0))
        / 1000;
    println!(
        "{} logged out after {secs} s ({} octets in, {} out; session {}, user {}, {})",
        s["mac"].as_str().unwrap_or("?"),
        s["counters"]["octets_in"],
        s["counters"]["octets_out"],
        s["session_id"].as_str().unwrap_or("?"),
        s["user"].as_str().unwrap_or("-"),
        s["reason"].as_str().unwrap_or("?"),
    );
}

fn addresses(v: &Value) -> String {
    let list: Vec<&str> = (v.as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(" ")
    }
}

/// `lassi garden list` as text: entries with origin (operator-added ones
/// marked `*`), then what is open.
pub fn garden(v: &Value) {
    println!("{:<40}  {:<10}  ADDRESSES", "ENTRY", "ORIGIN");
    let empty = Vec::new();
    for e in v["entries"].as_array().unwrap_or(&empty) {
        let origin = e["origin"].as_str().unwrap_or("?");
        let mark = if origin == "operator" { "*" } else { "" };
        let addrs = if e["addresses"].is_null() {
            String::new()
        } else {
            addresses(&e["addresses"])
        };
        println!(
            "{:<40}  {:<10}  {addrs}",
            format!("{}{mark}", e["entry"].as_str().unwrap_or("?")),
            origin
        );
    }
    println!("(* added by an operator: runtime only, gone at restart)");
    let open = &v["open"];
    println!("open networks: {}", addresses(&open["nets"]));
    println!("open resolved: {}", addresses(&open["resolved"]));
    println!("open learnt:   {}", addresses(&open["learnt"]));
    for (what, key) in [("IPv6 networks", "nets6"), ("IPv6 learnt: ", "learnt6")] {
        if !open[key].is_null() {
            println!("open {what}: {}", addresses(&open[key]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_359_600_000), "2026-11-22 15:00:00");
    }
}
