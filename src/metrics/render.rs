//! Every metric lassi exports, written from one [`Scrape`]: what the data
//! plane, the RADIUS service and the portal reported for this request.

use super::text::{Exposition, Family, Kind};
use crate::dataplane::{DropReason, EngineMetrics};
use crate::dhcp::DhcpStats;
use crate::io::forwarder::{DataplaneMetrics, FastPathLoad, IoStats};
use crate::portal::{LoginResult, PortalCounters};
use crate::radius::metrics::{CoaPortKind, CoaResult, ServerMetrics};
use crate::radius::server_stats::{RequestKind, RESPONSE_BUCKETS_MS, RESPONSE_CODES};
use crate::radius::RadiusStats;

/// What one scrape gathered.
pub struct Scrape {
    /// The data plane's counters.
    pub dataplane: DataplaneMetrics,
    /// The portal's counters.
    pub portal: PortalCounters,
    /// The RADIUS service's counters, when RADIUS is configured.
    pub radius: Option<RadiusScrape>,
    /// When lassi started, in Unix seconds.
    pub start_time_s: f64,
    /// lassi's version.
    pub version: &'static str,
}

/// The RADIUS service's part of a scrape.
pub struct RadiusScrape {
    /// Service-wide counters (spool, accounting, CoA).
    pub stats: RadiusStats,
    /// Each server's counters.
    pub servers: Vec<ServerMetrics>,
}

/// The exposition of a scrape.
pub fn render(s: &Scrape) -> String {
    let mut e = Exposition::new();
    process(&mut e, s);
    sessions(&mut e, &s.dataplane.engine);
    traffic(&mut e, &s.dataplane.engine);
    drops(&mut e, &s.dataplane.engine);
    dhcp_messages(&mut e, &s.dataplane.engine.dhcp);
    dhcp_pool(&mut e, &s.dataplane.engine.dhcp);
    dataplane_load(&mut e, &s.dataplane);
    portal(&mut e, &s.portal);
    if let Some(r) = &s.radius {
        radius_servers(&mut e, &r.servers);
        radius_histogram(&mut e, &r.servers);
        radius_service(&mut e, &r.stats);
        coa(&mut e, &r.stats);
    }
    e.finish()
}

fn process(e: &mut Exposition, s: &Scrape) {
    e.family(
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since the Unix epoch, in seconds.",
    )
    .sample(&[], s.start_time_s);
    e.family(
        "lassi_build_info",
        Kind::Gauge,
        "Always 1; the version of lassi in a label.",
    )
    .sample(&[("version", s.version)], 1u64);
}

fn sessions(e: &mut Exposition, m: &EngineMetrics) {
    e.family(
        "lassi_sessions",
        Kind::Gauge,
        "Clients holding a lease, by session state.",
    )
    .sample(&[("state", "unauthorized")], m.unauthorized)
    .sample(&[("state", "authorized")], m.authorized);
    e.family(
        "lassi_authorized_clients",
        Kind::Gauge,
        "Clients logged in now.",
    )
    .sample(&[], m.authorized);
    e.family(
        "lassi_throttled_clients",
        Kind::Gauge,
        "Logged-in clients slowed down by a used-up quota.",
    )
    .sample(&[], m.throttled);
    e.family(
        "lassi_portal_redirected_flows",
        Kind::Gauge,
        "Connections of unauthorized clients redirected to the portal now.",
    )
    .sample(&[], m.redirected_flows);
    e.family(
        "lassi_shaper_held_bytes",
        Kind::Gauge,
        "Bytes the bandwidth shapers hold now.",
    )
    .sample(&[], m.shaper_held_bytes);
}

fn traffic(e: &mut Exposition, m: &EngineMetrics) {
    let t = &m.traffic;
    e.family(
        "lassi_client_bytes_total",
        Kind::Counter,
        "IP bytes forwarded for logged-in clients (upload: sent by clients).",
    )
    .sample(&[("direction", "upload")], t.upload_bytes)
    .sample(&[("direction", "download")], t.download_bytes);
    e.family(
        "lassi_client_packets_total",
        Kind::Counter,
        "IP packets forwarded for logged-in clients (upload: sent by clients).",
    )
    .sample(&[("direction", "upload")], t.upload_packets)
    .sample(&[("direction", "download")], t.download_packets);
}

fn drops(e: &mut Exposition, m: &EngineMetrics) {
    let mut f = e.family(
        "lassi_dropped_packets_total",
        Kind::Counter,
        "Packets the data plane dropped, by reason.",
    );
    for r in DropReason::ALL {
        f.sample(&[("reason", r.name())], m.drops.get(*r));
    }
}

fn dhcp_messages(e: &mut Exposition, d: &DhcpStats) {
    let received = [
        ("discover", d.rx_discover),
        ("request", d.rx_request),
        ("decline", d.rx_decline),
        ("release", d.rx_release),
        ("inform", d.rx_inform),
        ("other", d.rx_other),
    ];
    let mut f = e.family(
        "lassi_dhcp_received_total",
        Kind::Counter,
        "DHCP messages received, by type.",
    );
    for (t, n) in received {
        f.sample(&[("type", t)], n);
    }
    let sent = [("offer", d.tx_offer), ("ack", d.tx_ack), ("nak", d.tx_nak)];
    let mut f = e.family(
        "lassi_dhcp_sent_total",
        Kind::Counter,
        "DHCP messages sent, by type.",
    );
    for (t, n) in sent {
        f.sample(&[("type", t)], n);
    }
    let dropped = [
        ("malformed", d.dropped_malformed),
        ("not_for_us", d.dropped_not_for_us),
        ("spoofed", d.dropped_spoofed),
        ("relayed", d.dropped_relayed),
        ("unsupported", d.dropped_unsupported),
        ("exhausted", d.dropped_exhausted),
        ("rate_limited", d.dropped_rate_limited),
        ("encode", d.dropped_encode),
    ];
    let mut f = e.family(
        "lassi_dhcp_dropped_total",
        Kind::Counter,
        "DHCP messages dropped unanswered, by reason.",
    );
    for (r, n) in dropped {
        f.sample(&[("reason", r)], n);
    }
}

fn dhcp_pool(e: &mut Exposition, d: &DhcpStats) {
    e.family(
        "lassi_dhcp_pool_addresses",
        Kind::Gauge,
        "Addresses in the dynamic pool (range minus server and static addresses).",
    )
    .sample(&[], u64::from(d.pool_size));
    e.family(
        "lassi_dhcp_pool_used_addresses",
        Kind::Gauge,
        "Pool addresses offered, leased, remembered for a client or quarantined.",
    )
    .sample(&[], u64::from(d.pool_used));
    e.family(
        "lassi_dhcp_addresses",
        Kind::Gauge,
        "Addresses by lease state (leased includes static leases).",
    )
    .sample(&[("state", "leased")], u64::from(d.bound))
    .sample(&[("state", "offered")], u64::from(d.offered))
    .sample(&[("state", "quarantined")], u64::from(d.quarantined));
}

fn dataplane_load(e: &mut Exposition, d: &DataplaneMetrics) {
    let names: Vec<String> = (0..d.workers.len()).map(|i| i.to_string()).collect();
    let mut f = e.family(
        "lassi_dataplane_cpu_seconds_total",
        Kind::Counter,
        "CPU time used by each forwarding worker thread, in seconds.",
    );
    for (w, name) in d.workers.iter().zip(&names) {
        f.sample(&[("worker", name)], w.cpu_seconds);
    }
    let mut f = e.family(
        "lassi_dataplane_packets_total",
        Kind::Counter,
        "Frames and packets each worker received from and sent to its devices.",
    );
    for (w, name) in d.workers.iter().zip(&names) {
        let io: &IoStats = &w.io;
        for (device, direction, n) in [
            ("lan", "received", io.lan_rx),
            ("lan", "sent", io.lan_tx),
            ("tun", "received", io.tun_rx),
            ("tun", "sent", io.tun_tx),
        ] {
            let labels = [
                ("worker", name.as_str()),
                ("device", device),
                ("direction", direction),
            ];
            f.sample(&labels, n);
        }
    }
    let mut f = e.family(
        "lassi_dataplane_send_errors_total",
        Kind::Counter,
        "Frames and packets a device would not take, per worker.",
    );
    for (w, name) in d.workers.iter().zip(&names) {
        f.sample(&[("worker", name), ("device", "lan")], w.io.lan_tx_errors)
            .sample(&[("worker", name), ("device", "tun")], w.io.tun_tx_errors);
    }
    let mut f = e.family(
        "lassi_dataplane_handoff_total",
        Kind::Counter,
        "Frames a thread handed to another (worker 0 runs the engine: logins, DHCP, \
         DNS; a shaped or metered session's owner shapes it), by outcome; dropped when \
         the hand-off queues were full.",
    );
    for (w, name) in d.workers.iter().zip(&names).skip(1) {
        f.sample(&[("worker", name), ("outcome", "handed")], w.io.handed_over)
            .sample(
                &[("worker", name), ("outcome", "dropped")],
                w.io.handoff_dropped,
            );
    }
    fast_path(e, &d.fast_path);
}

fn fast_path(e: &mut Exposition, p: &FastPathLoad) {
    e.family(
        "lassi_fast_path_sessions",
        Kind::Gauge,
        "Logged-in sessions the fast path forwards, by path (user: lassi's \
         workers; kernel: nftables and host routes).",
    )
    .sample(&[("path", p.kind)], p.sessions as u64);
    e.family(
        "lassi_kernel_fast_path_errors_total",
        Kind::Counter,
        "Changes and counter reads the kernel refused; the sessions concerned \
         stay on lassi's own path.",
    )
    .sample(&[], p.kernel_errors);
}

fn portal(e: &mut Exposition, p: &PortalCounters) {
    let mut f = e.family(
        "lassi_portal_logins_total",
        Kind::Counter,
        "Portal login attempts, by what they came to.",
    );
    for r in LoginResult::ALL {
        f.sample(&[("result", r.name())], p.login_results[r as usize]);
    }
    let refused = [
        ("cross_site", p.cross_site_refused),
        ("connection_limit", p.connections_refused),
        ("evicted", p.connections_evicted),
        ("body_timeout", p.body_timeouts),
        ("body_too_large", p.bodies_too_large),
    ];
    let mut f = e.family(
        "lassi_portal_refused_total",
        Kind::Counter,
        "Portal requests and connections refused or closed, by reason.",
    );
    for (reason, n) in refused {
        f.sample(&[("reason", reason)], n);
    }
}

/// A per-server family: one sample per server from `value`.
fn per_server(
    f: &mut Family<'_>,
    servers: &[ServerMetrics],
    value: impl Fn(&ServerMetrics) -> u64,
) {
    for s in servers {
        f.sample(&[("server", s.server.as_str())], value(s));
    }
}

fn radius_servers(e: &mut Exposition, servers: &[ServerMetrics]) {
    let mut f = e.family(
        "lassi_radius_requests_total",
        Kind::Counter,
        "RADIUS requests sent to each server (first transmissions), by type.",
    );
    for s in servers {
        for k in RequestKind::ALL {
            let labels = [("server", s.server.as_str()), ("type", k.name())];
            f.sample(&labels, s.stats.requests_of(k));
        }
    }
    let mut f = e.family(
        "lassi_radius_retransmits_total",
        Kind::Counter,
        "RADIUS requests resent to each server.",
    );
    per_server(&mut f, servers, |s| s.stats.retransmits);
    let mut f = e.family(
        "lassi_radius_timeouts_total",
        Kind::Counter,
        "RADIUS requests each server left unanswered after every resend.",
    );
    per_server(&mut f, servers, |s| s.stats.timeouts);
    let mut f = e.family(
        "lassi_radius_responses_total",
        Kind::Counter,
        "Valid RADIUS responses from each server, by code.",
    );
    for s in servers {
        for (i, (_, code)) in RESPONSE_CODES.iter().enumerate() {
            let labels = [("server", s.server.as_str()), ("code", *code)];
            f.sample(&labels, s.stats.responses[i]);
        }
    }
    let mut f = e.family(
        "lassi_radius_server_up",
        Kind::Gauge,
        "1 while a RADIUS server is in use, 0 while it is remembered as dead.",
    );
    per_server(&mut f, servers, |s| u64::from(s.up));
}

fn radius_histogram(e: &mut Exposition, servers: &[ServerMetrics]) {
    let bounds = RESPONSE_BUCKETS_MS.map(|ms| ms as f64 / 1000.0);
    let mut f = e.family(
        "lassi_radius_response_seconds",
        Kind::Histogram,
        "Time from a request's first transmission to a server until its answer, in seconds.",
    );
    for s in servers {
        let h = &s.stats.response_time;
        let sum = h.sum_ms as f64 / 1000.0;
        f.histogram(
            &[("server", s.server.as_str())],
            &bounds,
            &h.buckets,
            h.count,
            sum,
        );
    }
}

fn radius_service(e: &mut Exposition, r: &RadiusStats) {
    e.family(
        "lassi_radius_spool_records",
        Kind::Gauge,
        "Accounting records in the spool, not yet acknowledged by a server.",
    )
    .sample(&[], r.spool_pending);
    let accounting = [
        ("acknowledged", r.acct_acked),
        ("unanswered", r.acct_unanswered),
        ("refused", r.spool_refused),
        ("lost", r.acct_lost),
    ];
    let mut f = e.family(
        "lassi_radius_accounting_records_total",
        Kind::Counter,
        "Accounting records by outcome (unanswered: a send no server answered, \
         the record stays spooled; refused: the full spool took no more; lost).",
    );
    for (outcome, n) in accounting {
        f.sample(&[("outcome", outcome)], n);
    }
    let c = &r.client;
    let invalid = [
        ("malformed", c.malformed),
        ("unmatched", c.unmatched),
        ("bad_authenticator", c.bad_authenticator),
        ("bad_message_authenticator", c.bad_message_authenticator),
        (
            "missing_message_authenticator",
            c.missing_message_authenticator,
        ),
    ];
    let mut f = e.family(
        "lassi_radius_invalid_responses_total",
        Kind::Counter,
        "RADIUS datagrams dropped as no valid answer to a request, by reason.",
    );
    for (reason, n) in invalid {
        f.sample(&[("reason", reason)], n);
    }
}

fn coa(e: &mut Exposition, r: &RadiusStats) {
    let mut f = e.family(
        "lassi_coa_requests_total",
        Kind::Counter,
        "CoA and Disconnect requests received, by kind and result.",
    );
    for kind in CoaPortKind::ALL {
        for result in CoaResult::ALL {
            let labels = [("kind", kind.name()), ("result", result.name())];
            f.sample(&labels, r.coa_by_kind.get(kind, result));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{DropCounters, Traffic};
    use crate::io::forwarder::WorkerLoad;
    use crate::radius::metrics::CoaCounts;
    use crate::radius::server_stats::ServerStats;

    fn scrape() -> Scrape {
        let mut drops = DropCounters::default();
        drops.count(DropReason::Spoofed);
        drops.count(DropReason::Spoofed);
        let dhcp = DhcpStats {
            rx_discover: 3,
            tx_offer: 2,
            tx_nak: 1,
            dropped_spoofed: 4,
            pool_size: 253,
            pool_used: 5,
            bound: 4,
            offered: 1,
            ..DhcpStats::default()
        };
        let engine = EngineMetrics {
            unauthorized: 3,
            authorized: 2,
            throttled: 1,
            traffic: Traffic {
                upload_packets: 10,
                upload_bytes: 1000,
                download_packets: 20,
                download_bytes: 30_000,
            },
            drops,
            dhcp,
            redirected_flows: 7,
            shaper_held_bytes: 1500,
        };
        let io = IoStats {
            lan_rx: 11,
            tun_tx: 12,
            ..IoStats::default()
        };
        let mut portal = PortalCounters::default();
        portal.login_results[LoginResult::Success as usize] = 5;
        portal.login_results[LoginResult::Reject as usize] = 2;
        portal.cross_site_refused = 1;
        Scrape {
            dataplane: DataplaneMetrics {
                engine,
                workers: vec![WorkerLoad {
                    io,
                    cpu_seconds: 1.25,
                }],
                fast_path: FastPathLoad {
                    kind: "kernel",
                    sessions: 3,
                    kernel_errors: 2,
                },
            },
            portal,
            radius: None,
            start_time_s: 1_700_000_000.5,
            version: "1.2.3",
        }
    }

    fn radius() -> RadiusScrape {
        let mut a = ServerStats {
            requests: [4, 6, 0],
            retransmits: 2,
            timeouts: 1,
            responses: [3, 1, 0, 6],
            ..ServerStats::default()
        };
        for ms in [3, 30, 300] {
            a.response_time.observe(ms);
        }
        let servers = vec![
            ServerMetrics {
                server: "192.0.2.1:1812".into(),
                up: true,
                stats: a,
            },
            ServerMetrics {
                server: "[2001:db8::2]:1812".into(),
                up: false,
                stats: ServerStats::default(),
            },
        ];
        let mut coa_by_kind = CoaCounts::default();
        coa_by_kind.count(CoaPortKind::Disconnect, CoaResult::Ack);
        coa_by_kind.count(CoaPortKind::Other, CoaResult::Dropped);
        let stats = RadiusStats {
            spool_pending: 9,
            acct_acked: 8,
            acct_lost: 1,
            coa_by_kind,
            ..RadiusStats::default()
        };
        RadiusScrape { stats, servers }
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let mut s = scrape();
        s.radius = Some(radius());
        let text = render(&s);
        let mut families = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind != "counter" || name.ends_with("_total"), "{l}");
                assert!(!families.contains(&name), "{name} twice");
                families.push(name);
            } else if !l.starts_with("# HELP ") {
                // A sample belongs to the family announced last.
                let fam = families.last().unwrap();
                assert!(l.starts_with(fam), "{l} after TYPE of {fam}");
            }
        }
        assert!(families.len() >= 25, "{families:?}");
    }

    #[test]
    fn data_plane_families() {
        let text = render(&scrape());
        has(&text, "lassi_sessions{state=\"unauthorized\"} 3");
        has(&text, "lassi_sessions{state=\"authorized\"} 2");
        has(&text, "lassi_authorized_clients 2");
        has(&text, "lassi_throttled_clients 1");
        has(&text, "lassi_client_bytes_total{direction=\"upload\"} 1000");
        has(
            &text,
            "lassi_client_bytes_total{direction=\"download\"} 30000",
        );
        has(
            &text,
            "lassi_client_packets_total{direction=\"download\"} 20",
        );
        has(&text, "lassi_dropped_packets_total{reason=\"spoofed\"} 2");
        has(&text, "lassi_dropped_packets_total{reason=\"quota\"} 0");
        has(&text, "lassi_portal_redirected_flows 7");
        has(&text, "lassi_shaper_held_bytes 1500");
        has(
            &text,
            "lassi_dataplane_cpu_seconds_total{worker=\"0\"} 1.25",
        );
        has(
            &text,
            "lassi_dataplane_packets_total{worker=\"0\",device=\"lan\",direction=\"received\"} 11",
        );
        has(
            &text,
            "lassi_dataplane_packets_total{worker=\"0\",device=\"tun\",direction=\"sent\"} 12",
        );
        has(&text, "lassi_fast_path_sessions{path=\"kernel\"} 3");
        has(&text, "lassi_kernel_fast_path_errors_total 2");
        has(&text, "process_start_time_seconds 1700000000.5");
        has(&text, "lassi_build_info{version=\"1.2.3\"} 1");
    }

    #[test]
    fn dhcp_families() {
        let text = render(&scrape());
        has(&text, "lassi_dhcp_received_total{type=\"discover\"} 3");
        has(&text, "lassi_dhcp_sent_total{type=\"offer\"} 2");
        has(&text, "lassi_dhcp_sent_total{type=\"nak\"} 1");
        has(&text, "lassi_dhcp_dropped_total{reason=\"spoofed\"} 4");
        has(&text, "lassi_dhcp_pool_addresses 253");
        has(&text, "lassi_dhcp_pool_used_addresses 5");
        has(&text, "lassi_dhcp_addresses{state=\"leased\"} 4");
        has(&text, "lassi_dhcp_addresses{state=\"offered\"} 1");
    }

    #[test]
    fn portal_families() {
        let text = render(&scrape());
        has(&text, "lassi_portal_logins_total{result=\"success\"} 5");
        has(&text, "lassi_portal_logins_total{result=\"reject\"} 2");
        has(
            &text,
            "lassi_portal_logins_total{result=\"rate_limited\"} 0",
        );
        has(&text, "lassi_portal_refused_total{reason=\"cross_site\"} 1");
    }

    #[test]
    fn radius_families_only_with_radius() {
        assert!(!render(&scrape()).contains("lassi_radius"));
        let mut s = scrape();
        s.radius = Some(radius());
        let text = render(&s);
        let a = "server=\"192.0.2.1:1812\"";
        has(
            &text,
            &format!("lassi_radius_requests_total{{{a},type=\"access\"}} 4"),
        );
        has(
            &text,
            &format!("lassi_radius_requests_total{{{a},type=\"accounting\"}} 6"),
        );
        has(&text, &format!("lassi_radius_retransmits_total{{{a}}} 2"));
        has(&text, &format!("lassi_radius_timeouts_total{{{a}}} 1"));
        has(
            &text,
            &format!("lassi_radius_responses_total{{{a},code=\"access_accept\"}} 3"),
        );
        has(
            &text,
            &format!("lassi_radius_responses_total{{{a},code=\"access_reject\"}} 1"),
        );
        has(&text, &format!("lassi_radius_server_up{{{a}}} 1"));
        has(
            &text,
            "lassi_radius_server_up{server=\"[2001:db8::2]:1812\"} 0",
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_bucket{{{a},le=\"0.001\"}} 0"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_bucket{{{a},le=\"0.005\"}} 1"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_bucket{{{a},le=\"0.05\"}} 2"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_bucket{{{a},le=\"0.5\"}} 3"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_bucket{{{a},le=\"+Inf\"}} 3"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_sum{{{a}}} 0.333"),
        );
        has(
            &text,
            &format!("lassi_radius_response_seconds_count{{{a}}} 3"),
        );
        has(&text, "lassi_radius_spool_records 9");
        has(
            &text,
            "lassi_radius_accounting_records_total{outcome=\"acknowledged\"} 8",
        );
        has(
            &text,
            "lassi_radius_accounting_records_total{outcome=\"lost\"} 1",
        );
        has(
            &text,
            "lassi_coa_requests_total{kind=\"disconnect\",result=\"ack\"} 1",
        );
        has(
            &text,
            "lassi_coa_requests_total{kind=\"coa\",result=\"ack\"} 0",
        );
        has(
            &text,
            "lassi_coa_requests_total{kind=\"other\",result=\"dropped\"} 1",
        );
    }
}
