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

use serde_json::{json, Value};

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
}

impl FirewallSpec {
    fn table(&self) -> String {
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
        let lan = &self.lan_interface;
        let name = self.table();
        let mut cmds: Vec<Value> = Vec::new();
        // add + delete + add: replaces a table left by a crashed run, and
        // works whether or not one exists.
        for (family, table) in self.tables() {
            let t = json!({"table": {"family": family, "name": table}});
            cmds.push(json!({"add": t}));
            cmds.push(json!({"delete": t}));
            cmds.push(json!({"add": t}));
        }
        let iif =
            json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": lan}});
        let oif =
            json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": lan}});
        let chain = |family: &str, table: &str, chain: &str, hook: &str, prio: i32| {
            json!({"add": {"chain": {"family": family, "table": table, "name": chain,
                "type": "filter", "hook": hook, "prio": prio, "policy": "accept"}}})
        };
        let rule = |family: &str, table: &str, chain: &str, m: &Value| {
            json!({"add": {"rule": {"family": family, "table": table, "chain": chain,
                "expr": [m, {"counter": null}, {"drop": null}]}}})
        };
        // IPv4 and IPv6: nothing from the LAN is delivered to or routed by
        // the kernel, and the kernel sends nothing onto the LAN itself.
        for (c, hook, m) in [
            ("input", "input", &iif),
            ("forward", "forward", &iif),
            ("forward_out", "forward", &oif),
            ("output", "output", &oif),
        ] {
            cmds.push(chain("inet", &name, c, hook, -300));
            cmds.push(rule("inet", &name, c, m));
        }
        // Guests (logged in or not, IPv4 or IPv6) reach the router only for
        // the portal, DNS and ping: ssh, a web UI or a proxy must not be one
        // login away. Replies to its own connections pass; forwarding is untouched.
        let tun = &self.tun_interface;
        let iif_tun =
            json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": tun}});
        let port = |proto: &str, port: u16| json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": port}});
        cmds.push(chain("inet", &name, "input_tun", "input", -300));
        let accepts = [
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}),
            port("tcp", self.portal_port),
            port("tcp", 53),
            port("udp", 53),
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": "echo-request"}}),
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}),
        ];
        for m in accepts {
            cmds.push(
                json!({"add": {"rule": {"family": "inet", "table": name, "chain": "input_tun",
                "expr": [iif_tun, m, {"accept": null}]}}}),
            );
        }
        cmds.push(rule("inet", &name, "input_tun", &iif_tun));
        // ARP: lassi answers for the gateway itself; the kernel must not
        // (it would answer for every local address, the uplink's included).
        for (c, m) in [("input", &iif), ("output", &oif)] {
            cmds.push(chain("arp", &name, c, c, 0));
            cmds.push(rule("arp", &name, c, m));
        }
        if let Some(wan) = &self.masquerade_out {
            let nat = format!("{name}-nat");
            cmds.push(
                json!({"add": {"chain": {"family": "ip", "table": nat, "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
            );
            cmds.push(json!({"add": {"rule": {"family": "ip", "table": nat, "chain": "postrouting", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": wan}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": {"prefix": {"addr": self.lan_network.addr.to_string(), "len": self.lan_network.prefix}}}},
                {"counter": null},
                {"masquerade": null}
            ]}}}));
        }
        json!({"nftables": cmds})
    }

    /// The nft JSON batch of the VLAN guard: a `netdev` table whose ingress
    /// chain on the LAN device drops tagged frames. The kernel strips a tag
    /// before the IP stack, and a VLAN-0 ("priority") frame then enters it
    /// as if untagged on the LAN interface, reaching prerouting and
    /// conntrack before the input drop of the main table. Ingress runs
    /// after packet sockets have their copy (lassi's raw socket still sees
    /// and counts it), before the stack. A batch of its own: a router
    /// without the netdev family (OpenWrt's `kmod-nft-netdev`) still runs.
    pub fn vlan_guard_json(&self) -> Value {
        let t = json!({"table": {"family": "netdev", "name": self.table()}});
        json!({"nftables": [
            {"add": t}, {"delete": t}, {"add": t},
            {"add": {"chain": {"family": "netdev", "table": self.table(), "name": "ingress",
                "type": "filter", "hook": "ingress", "dev": self.lan_interface, "prio": -500,
                "policy": "accept"}}},
            {"add": {"rule": {"family": "netdev", "table": self.table(), "chain": "ingress",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "type"}},
                        "right": {"set": ["8021q", "8021ad"]}}},
                    {"counter": null}, {"drop": null}
                ]}}}
        ]})
    }

    /// The nft JSON batch that removes the VLAN guard (tolerates absence).
    pub fn remove_vlan_guard_json(&self) -> Value {
        let t = json!({"table": {"family": "netdev", "name": self.table()}});
        json!({"nftables": [{"add": t}, {"delete": t}]})
    }

    /// The nft JSON batch that removes lassi's tables (tolerates absence).
    pub fn remove_json(&self) -> Value {
        let mut cmds = Vec::new();
        for (family, table) in self.tables() {
            let t = json!({"table": {"family": family, "name": table}});
            cmds.push(json!({"add": t}));
            cmds.push(json!({"delete": t}));
        }
        json!({"nftables": cmds})
    }
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
    /// Install (or replace) lassi's tables, and the VLAN guard where the
    /// kernel has the netdev family (else a warning says what is missing).
    pub fn install(spec: FirewallSpec) -> Result<Firewall, String> {
        nft(&spec.install_json())?;
        let vlan_guard = match nft(&spec.vlan_guard_json()) {
            Ok(()) => true,
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

    fn spec(nat: bool) -> FirewallSpec {
        FirewallSpec {
            lan_interface: "lan0".into(),
            lan_network: "10.1.0.0/24".parse().unwrap(),
            masquerade_out: nat.then(|| "wan0".to_string()),
            tun_interface: "lassi0".into(),
            portal_port: 3990,
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
    fn masquerade_only_when_asked_and_removal_covers_all_tables() {
        let s = spec(true);
        let text = s.install_json().to_string();
        assert!(text.contains("\"masquerade\":null"));
        assert!(text.contains("\"addr\":\"10.1.0.0\",\"len\":24"));
        let rm = s.remove_json();
        assert_eq!(rm["nftables"].as_array().unwrap().len(), 6);
    }
}
