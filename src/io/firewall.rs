//! lassi's own nftables tables, installed at start and removed at exit.
//!
//! lassi reads the LAN through a raw socket, which sees frames before the
//! kernel's IP stack. Left alone, the kernel would *also* route or answer
//! those frames (with ip_forward on, a client with a hand-set address and
//! route would go straight past the portal). These tables make the kernel
//! deaf and mute on the LAN interface, IPv4, IPv6 and ARP alike, and drop
//! VLAN-tagged frames at the device's ingress; lassi's raw socket is
//! unaffected. Optionally they masquerade guest IPv4 traffic toward the
//! WAN; IPv6 is never NATed (the LAN prefix is routed to lassi's TUN
//! device, and only what lassi writes there reaches the kernel).
//!
//! The rules travel as nft's JSON (`nft -j -f -`): structured, no quoting
//! pitfalls with interface names.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::kernel_tables::{CHAIN_DIVERT, CHAIN_MARK, FAST_MARK, SET_DOWN, SET_FAST, SET_UP};
use crate::wire::Ipv4Net;

/// What the tables need to know.
#[derive(Clone, Debug)]
pub struct FirewallSpec {
    /// The guest interface.
    pub lan_interface: String,
    /// The guest network (for masquerade).
    pub lan_network: Ipv4Net,
    /// Masquerade out of this interface, if set.
    pub masquerade_out: Option<String>,
    /// The TUN device guests' traffic reaches the kernel through.
    pub tun_interface: String,
    /// lassi's portal port on the gateway address.
    pub portal_port: u16,
    /// The kernel fast path: the kernel forwards the sessions lassi puts
    /// in the sets ([`super::kernel_tables`]).
    pub kernel_fast_path: bool,
}

impl FirewallSpec {
    /// lassi's table name (in each family it uses).
    pub fn table(&self) -> String {
        format!("lassi-{}", self.lan_interface)
    }

    fn tables(&self) -> Vec<(&'static str, String)> {
        let mut t = vec![("inet", self.table()), ("arp", self.table())];
        if self.masquerade_out.is_some() {
            t.push(("ip", format!("{}-nat", self.table())));
        }
        t
    }

    /// The nft JSON batch that (re)creates lassi's tables atomically.
    pub fn install_json(&self) -> Value {
        let name = self.table();
        let mut cmds = Vec::new();
        // add + delete + add: replaces a table left by a crashed run, and
        // works whether or not one exists.
        for (family, table) in self.tables() {
            for verb in ["add", "delete", "add"] {
                cmds.push(table_cmd(verb, family, &table));
            }
        }
        let iif = name_match("iifname", &self.lan_interface);
        let oif = name_match("oifname", &self.lan_interface);
        if self.kernel_fast_path {
            cmds.extend(self.counting_sets());
        }
        // IPv4 and IPv6: nothing from the LAN is delivered to or routed by
        // the kernel, and the kernel sends nothing onto the LAN itself
        // (with the kernel fast path: but for the sessions in its sets).
        for (c, hook, m) in [
            ("input", "input", &iif),
            ("forward", "forward", &iif),
            ("forward_out", "forward", &oif),
            ("output", "output", &oif),
        ] {
            cmds.push(base_chain("inet", &name, c, hook, -300));
            if self.kernel_fast_path && c != "input" {
                cmds.push(self.fast_accept(c, m));
            }
            cmds.push(drop_rule("inet", &name, c, m));
        }
        cmds.extend(self.router_input());
        // ARP: lassi answers for the gateway itself; the kernel must not
        // (it would answer for every local address, the uplink's included).
        for (c, m) in [("input", &iif), ("output", &oif)] {
            cmds.push(base_chain("arp", &name, c, c, 0));
            cmds.push(drop_rule("arp", &name, c, m));
        }
        cmds.extend(self.masquerade());
        batch(&cmds)
    }

    /// Guests (logged in or not, IPv4 or IPv6) reach the router only for
    /// the portal, DNS and ping: ssh, a web UI or a proxy must not be one
    /// login away. Replies to its own connections pass; forwarding is
    /// untouched.
    fn router_input(&self) -> Vec<String> {
        let name = self.table();
        let iif_tun = name_match("iifname", &self.tun_interface);
        let port = |proto: &str, port: u16| {
            format!(
                r#"{{"match":{{"op":"==","left":{{"payload":{{"protocol":"{proto}","field":"dport"}}}},"right":{port}}}}}"#
            )
        };
        let icmp = |proto: &str| {
            format!(
                r#"{{"match":{{"op":"==","left":{{"payload":{{"protocol":"{proto}","field":"type"}}}},"right":"echo-request"}}}}"#
            )
        };
        let accepts = [
            r#"{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}}"#.to_string(),
            port("tcp", self.portal_port),
            port("tcp", 53),
            port("udp", 53),
            icmp("icmp"),
            icmp("icmpv6"),
        ];
        let mut cmds = vec![base_chain("inet", &name, "input_tun", "input", -300)];
        for m in accepts {
            let expr = format!(r#"{iif_tun},{m},{{"accept":null}}"#);
            cmds.push(rule("inet", &name, "input_tun", &expr));
        }
        cmds.push(drop_rule("inet", &name, "input_tun", &iif_tun));
        cmds
    }

    /// Masquerade of guest IPv4 toward the WAN, if asked for.
    fn masquerade(&self) -> Vec<String> {
        let Some(wan) = &self.masquerade_out else {
            return Vec::new();
        };
        let nat = format!("{}-nat", self.table());
        let chain = format!(
            r#"{{"add":{{"chain":{{"family":"ip","table":{},"name":"postrouting","type":"nat","hook":"postrouting","prio":100,"policy":"accept"}}}}}}"#,
            q(&nat)
        );
        let expr = format!(
            r#"{},{{"match":{{"op":"==","left":{},"right":{}}}}},{{"counter":null}},{{"masquerade":null}}"#,
            name_match("oifname", wan),
            ip_field("saddr"),
            prefix(&self.lan_network)
        );
        vec![chain, rule("ip", &nat, "postrouting", &expr)]
    }

    /// The kernel fast path's address sets: the upload one with a counter
    /// per element; the download one without (downloads are counted per
    /// segment at the LAN egress, see `download_counter`).
    fn counting_sets(&self) -> Vec<String> {
        [(SET_UP, r#","stmt":[{"counter":null}]"#), (SET_DOWN, "")]
            .iter()
            .map(|(set, stmt)| {
                format!(
                    r#"{{"add":{{"set":{{"family":"inet","table":{},"name":"{set}","type":"ipv4_addr"{stmt}}}}}}}"#,
                    q(&self.table())
                )
            })
            .collect()
    }

    /// The kernel fast path's accept in chain `c` (whose LAN match is `m`):
    /// frames the ingress chain marked, from an address in the upload set;
    /// packets to an address in the download set. The set lookup counts
    /// the packet in that session's element: IP-layer bytes, after the
    /// kernel trimmed any link-layer padding.
    fn fast_accept(&self, c: &str, m: &str) -> String {
        let in_set = |field: &str, set: &str| {
            format!(
                r#"{{"match":{{"op":"==","left":{},"right":"@{set}"}}}}"#,
                ip_field(field)
            )
        };
        let expr = if c == "forward" {
            format!(
                r#"{m},{{"match":{{"op":"==","left":{{"&":[{{"meta":{{"key":"mark"}}}},{FAST_MARK}]}},"right":{FAST_MARK}}}}},{},{{"accept":null}}"#,
                in_set("saddr", SET_UP)
            )
        } else {
            format!(r#"{m},{},{{"accept":null}}"#, in_set("daddr", SET_DOWN))
        };
        rule("inet", &self.table(), c, &expr)
    }

    /// The kernel fast path's marking at the LAN device's ingress: a frame
    /// addressed to lassi's MAC alone, to somewhere off the guest network,
    /// is looked up once by its (address, MAC) pair in the verdict map,
    /// whose element sends it to the chain that marks it (or, for a
    /// session with a connection lassi still steers to the portal, to the
    /// one that first leaves its TCP to port 80 alone). Ingress runs before
    /// lassi's IPv4 socket, which skips marked frames, and before the IP
    /// stack, whose forward chain lets them through.
    fn fast_marking(&self) -> Vec<String> {
        let t = q(&self.table());
        let mark = format!(
            r#"{{"mangle":{{"key":{{"meta":{{"key":"mark"}}}},"value":{{"|":[{{"meta":{{"key":"mark"}}}},{FAST_MARK}]}}}}}}"#
        );
        let chain = |name: &str| {
            format!(r#"{{"add":{{"chain":{{"family":"netdev","table":{t},"name":"{name}"}}}}}}"#)
        };
        let port80 = r#"{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":80}},{"return":null}"#;
        let lookup = format!(
            r#"{{"match":{{"op":"==","left":{{"meta":{{"key":"pkttype"}}}},"right":"host"}}}},{{"match":{{"op":"!=","left":{},"right":{}}}}},{{"vmap":{{"key":{{"concat":[{},{{"payload":{{"protocol":"ether","field":"saddr"}}}}]}},"data":"@{SET_FAST}"}}}}"#,
            ip_field("daddr"),
            prefix(&self.lan_network),
            ip_field("saddr")
        );
        let table = self.table();
        vec![
            chain(CHAIN_MARK),
            rule("netdev", &table, CHAIN_MARK, &mark),
            chain(CHAIN_DIVERT),
            rule("netdev", &table, CHAIN_DIVERT, port80),
            rule("netdev", &table, CHAIN_DIVERT, &mark),
            format!(
                r#"{{"add":{{"map":{{"family":"netdev","table":{t},"name":"{SET_FAST}","type":["ipv4_addr","ether_addr"],"map":"verdict"}}}}}}"#
            ),
            rule("netdev", &table, "ingress", &lookup),
        ]
    }

    /// The nft JSON batch of the VLAN guard: a `netdev` table whose ingress
    /// chain on the LAN device drops tagged frames. The kernel strips a tag
    /// before the IP stack, and a VLAN-0 ("priority") frame then enters it
    /// as if untagged on the LAN interface, reaching prerouting and
    /// conntrack before the input drop of the main table. Ingress runs
    /// after packet sockets have their copy (lassi's raw socket still sees
    /// and counts it), before the stack. A batch of its own: a router
    /// without the netdev family (OpenWrt's `kmod-nft-netdev`) still runs.
    /// With the kernel fast path the same chain marks its sessions.
    pub fn vlan_guard_json(&self) -> Value {
        let table = self.table();
        let mut cmds: Vec<String> = ["add", "delete", "add"]
            .iter()
            .map(|verb| table_cmd(verb, "netdev", &table))
            .collect();
        cmds.push(format!(
            r#"{{"add":{{"chain":{{"family":"netdev","table":{},"name":"ingress","type":"filter","hook":"ingress","dev":{},"prio":-500,"policy":"accept"}}}}}}"#,
            q(&table),
            q(&self.lan_interface)
        ));
        let tagged = r#"{"match":{"op":"==","left":{"payload":{"protocol":"ether","field":"type"}},"right":{"set":["8021q","8021ad"]}}}"#;
        cmds.push(drop_rule("netdev", &table, "ingress", tagged));
        if self.kernel_fast_path {
            cmds.extend(self.fast_marking());
        }
        batch(&cmds)
    }

    /// The nft JSON batch that removes the VLAN guard (tolerates absence).
    pub fn remove_vlan_guard_json(&self) -> Value {
        let table = self.table();
        batch(&[
            table_cmd("add", "netdev", &table),
            table_cmd("delete", "netdev", &table),
        ])
    }

    /// The nft JSON batch that removes lassi's tables (tolerates absence).
    pub fn remove_json(&self) -> Value {
        let mut cmds = Vec::new();
        for (family, table) in self.tables() {
            cmds.push(table_cmd("add", family, &table));
            cmds.push(table_cmd("delete", family, &table));
        }
        batch(&cmds)
    }
}

// The rules are written as JSON text and parsed once: `json!` literals
// cost several times the code, and the router binary has little room.

/// `s` as a JSON string (quoted and escaped: interface names are the
/// operator's).
fn q(s: &str) -> String {
    Value::from(s).to_string()
}

/// The batch of `cmds` (each one nft JSON command).
fn batch(cmds: &[String]) -> Value {
    serde_json::from_str(&format!(r#"{{"nftables":[{}]}}"#, cmds.join(",")))
        .expect("lassi's nft JSON is well-formed")
}

/// A table command (`add`, `delete`).
fn table_cmd(verb: &str, family: &str, table: &str) -> String {
    format!(
        r#"{{"{verb}":{{"table":{{"family":"{family}","name":{}}}}}}}"#,
        q(table)
    )
}

/// A base chain with policy accept.
fn base_chain(family: &str, table: &str, chain: &str, hook: &str, prio: i32) -> String {
    format!(
        r#"{{"add":{{"chain":{{"family":"{family}","table":{},"name":"{chain}","type":"filter","hook":"{hook}","prio":{prio},"policy":"accept"}}}}}}"#,
        q(table)
    )
}

/// A rule whose expressions are `expr` (the inside of the JSON array).
fn rule(family: &str, table: &str, chain: &str, expr: &str) -> String {
    format!(
        r#"{{"add":{{"rule":{{"family":"{family}","table":{},"chain":"{chain}","expr":[{expr}]}}}}}}"#,
        q(table)
    )
}

/// A rule that counts and drops what matches `m`.
fn drop_rule(family: &str, table: &str, chain: &str, m: &str) -> String {
    rule(
        family,
        table,
        chain,
        &format!(r#"{m},{{"counter":null}},{{"drop":null}}"#),
    )
}

/// A match of the interface name `key` (`iifname`, `oifname`) against `name`.
fn name_match(key: &str, name: &str) -> String {
    format!(
        r#"{{"match":{{"op":"==","left":{{"meta":{{"key":"{key}"}}}},"right":{}}}}}"#,
        q(name)
    )
}

/// The IPv4 header's `field`.
fn ip_field(field: &str) -> String {
    format!(r#"{{"payload":{{"protocol":"ip","field":"{field}"}}}}"#)
}

/// A network as an nft prefix.
fn prefix(net: &Ipv4Net) -> String {
    format!(
        r#"{{"prefix":{{"addr":"{}","len":{}}}}}"#,
        net.addr, net.prefix
    )
}

fn nft(batch: &Value) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft ({e}): install the nftables package"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(batch.to_string().as_bytes())
        .map_err(|e| format!("writing to nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused lassi's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The installed tables; removed when dropped.
pub struct Firewall {
    spec: FirewallSpec,
    vlan_guard: bool,
}

impl Firewall {
    /// lassi's table name.
    pub fn table(&self) -> String {
        self.spec.table()
    }

    /// Install (or replace) lassi's tables, and the VLAN guard where the
    /// kernel has the netdev family (else a warning says what is missing).
    pub fn install(spec: FirewallSpec) -> Result<Firewall, String> {
        nft(&spec.install_json())?;
        let vlan_guard = match nft(&spec.vlan_guard_json()) {
            Ok(()) => true,
            Err(e) if spec.kernel_fast_path => {
                let _ = nft(&spec.remove_json());
                return Err(format!(
                    "dataplane.fast_path = \"kernel\" needs nftables' netdev family on {} \
                     (OpenWrt: kmod-nft-netdev): {e}",
                    spec.lan_interface
                ));
            }
            Err(e) => {
                tracing::warn!(
                    "no netdev ingress chain on {} ({e}): VLAN-0 tagged frames reach the \
                     kernel's prerouting (lassi itself still drops every tagged frame); \
                     install the netdev family (OpenWrt: kmod-nft-netdev)",
                    spec.lan_interface
                );
                false
            }
        };
        Ok(Firewall { spec, vlan_guard })
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Err(e) = nft(&self.spec.remove_json()) {
            tracing::error!("removing nftables tables: {e}");
        }
        if self.vlan_guard {
            if let Err(e) = nft(&self.spec.remove_vlan_guard_json()) {
                tracing::error!("removing the netdev table: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(nat: bool) -> FirewallSpec {
        FirewallSpec {
            lan_interface: "lan0".into(),
            lan_network: "10.1.0.0/24".parse().unwrap(),
            masquerade_out: nat.then(|| "wan0".to_string()),
            tun_interface: "lassi0".into(),
            portal_port: 3990,
            kernel_fast_path: false,
        }
    }

    #[test]
    fn rules_drop_lan_traffic_in_every_direction() {
        let j = spec(false).install_json();
        let cmds = j["nftables"].as_array().unwrap();
        let rules: Vec<&Value> = cmds.iter().filter_map(|c| c["add"].get("rule")).collect();
        let lan: Vec<&&Value> = rules
            .iter()
            .filter(|r| r["expr"][0]["match"]["right"] == "lan0")
            .collect();
        // inet: input, forward (in), forward (out), output; arp: input, output.
        assert_eq!(lan.len(), 6);
        for r in &lan {
            assert_eq!(
                r["expr"].as_array().unwrap().last().unwrap(),
                &json!({"drop": null})
            );
        }
        // From the TUN: six accepts (replies, portal, DNS tcp/udp, ping over
        // IPv4 and IPv6), then drop.
        let tun: Vec<&&Value> = rules
            .iter()
            .filter(|r| r["expr"][0]["match"]["right"] == "lassi0")
            .collect();
        assert_eq!(tun.len(), 7);
        assert_eq!(
            tun[5]["expr"][1]["match"]["left"]["payload"]["protocol"],
            "icmpv6"
        );
        assert_eq!(tun[1]["expr"][1]["match"]["right"], 3990);
        assert_eq!(
            tun.last().unwrap()["expr"]
                .as_array()
                .unwrap()
                .last()
                .unwrap(),
            &json!({"drop": null})
        );
        assert!(!j.to_string().contains("masquerade"));
        // Tagged frames (VLAN 0 included) stop at the LAN device's ingress,
        // in a batch of its own.
        assert!(!j.to_string().contains("netdev"));
        let guard = spec(false).vlan_guard_json();
        let cmds = guard["nftables"].as_array().unwrap();
        assert_eq!(cmds[3]["add"]["chain"]["dev"], "lan0");
        let vlan = &cmds[4]["add"]["rule"];
        assert_eq!(vlan["expr"][0]["match"]["right"]["set"][0], "8021q");
        assert_eq!(vlan["expr"][2], json!({"drop": null}));
        // Every table is created fresh (add, delete, add).
        let first: Vec<&str> = cmds
            .iter()
            .take(3)
            .map(|c| c.as_object().unwrap().keys().next().unwrap().as_str())
            .collect();
        assert_eq!(first, ["add", "delete", "add"]);
    }

    #[test]
    fn the_kernel_fast_path_lets_through_only_marked_frames_of_counted_sessions() {
        let mut k = spec(false);
        k.kernel_fast_path = true;
        let j = k.install_json();
        let cmds = j["nftables"].as_array().unwrap();
        let sets: Vec<&Value> = cmds.iter().filter_map(|c| c["add"].get("set")).collect();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0]["name"], SET_UP);
        assert_eq!(sets[0]["stmt"][0], json!({"counter": null}));
        assert_eq!(sets[1]["name"], SET_DOWN);
        assert!(sets[1].get("stmt").is_none());
        let rules: Vec<&Value> = cmds.iter().filter_map(|c| c["add"].get("rule")).collect();
        let in_chain = |c: &str| -> Vec<&&Value> {
            rules
                .iter()
                .filter(|r| r["chain"] == c && r["family"] == "inet")
                .collect()
        };
        // forward: marked AND in the upload set, then the drop; the input
        // chain stays closed to the LAN.
        let fwd = in_chain("forward");
        assert_eq!(fwd.len(), 2);
        let text = fwd[0]["expr"].to_string();
        assert!(text.contains("\"mark\"") && text.contains("@up4"), "{text}");
        assert_eq!(fwd[0]["expr"][3], json!({"accept": null}));
        assert_eq!(fwd[1]["expr"][2], json!({"drop": null}));
        assert_eq!(in_chain("input").len(), 1);
        for c in ["forward_out", "output"] {
            assert!(in_chain(c)[0]["expr"].to_string().contains("@down4"));
        }
        // Ingress: VLAN drop, then one map lookup, only for frames to
        // lassi's MAC, off the guest network; its chains mark (the divert
        // one after leaving port 80 alone).
        let guard = k.vlan_guard_json();
        let g = guard["nftables"].as_array().unwrap();
        let rules: Vec<&Value> = g.iter().filter_map(|c| c["add"].get("rule")).collect();
        let of = |c: &str| -> Vec<&&Value> { rules.iter().filter(|r| r["chain"] == c).collect() };
        let ingress = of("ingress");
        assert_eq!(ingress.len(), 2);
        let lookup = ingress[1]["expr"].to_string();
        assert!(
            lookup.contains("\"host\"") && lookup.contains("10.1.0.0"),
            "{lookup}"
        );
        assert_eq!(ingress[1]["expr"][2]["vmap"]["data"], "@fast4");
        let marks = json!({"|": [{"meta": {"key": "mark"}}, FAST_MARK]});
        assert_eq!(of(CHAIN_MARK)[0]["expr"][0]["mangle"]["value"], marks);
        let divert = of(CHAIN_DIVERT);
        assert_eq!(divert[0]["expr"][1], json!({"return": null}));
        assert_eq!(divert[1]["expr"][0]["mangle"]["value"], marks);
        let map = g.iter().find_map(|c| c["add"].get("map")).unwrap();
        assert_eq!(map["map"], "verdict");
        // Without the kernel fast path none of it.
        let plain = spec(false);
        assert!(!plain.install_json().to_string().contains("@up4"));
        assert!(!plain.vlan_guard_json().to_string().contains("fast4"));
    }

    #[test]
    fn an_odd_interface_name_stays_one_json_string() {
        let mut s = spec(true);
        s.lan_interface = "lan\"0\\x".into();
        let j = s.install_json();
        let cmds = j["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["name"], "lassi-lan\"0\\x");
        assert!(s.vlan_guard_json()["nftables"][3]["add"]["chain"]["dev"] == "lan\"0\\x");
    }

    #[test]
    fn masquerade_only_when_asked_and_removal_covers_all_tables() {
        let s = spec(true);
        let text = s.install_json().to_string();
        assert!(text.contains("\"masquerade\":null"));
        assert!(text.contains("\"addr\":\"10.1.0.0\",\"len\":24"));
        let rm = s.remove_json();
        assert_eq!(rm["nftables"].as_array().unwrap().len(), 6);
    }
}
