//! Connects the RADIUS service to the gateway: portal logins and MAC
//! authentication become Access-Requests, session events become accounting
//! records, and CoA/Disconnect requests act on sessions.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, Ipv4Net, RadiusConfig};
use crate::control::server::DataplaneHandle;
use crate::dataplane::Event;
use crate::portal::auth::{AuthFuture, AuthOutcome, AuthRequest, Authenticator, Credentials};
use crate::radius::attrs::{AcctRecord, AcctSession, MacAuthSettings, ReplyLimits};
use crate::radius::coa::{CoaKind, CoaReply, ErrorCause};
use crate::radius::service::{
    AccessAnswer as RadiusOutcome, CoaCall, CoaSettings, RadiusHandle, RadiusSettings, ServerConfig,
};
use crate::radius::AccessRequest;
use crate::session::{Authorization, EndReason, SessionLimits, SessionReport};
use crate::wire::MacAddr;

/// RADIUS service settings from the config.
pub fn radius_settings(cfg: &Config, r: &RadiusConfig, nas_mac: MacAddr) -> RadiusSettings {
    let servers = r
        .servers
        .iter()
        .map(|s| ServerConfig {
            addr: s.address,
            auth_port: s.auth_port,
            acct_port: s.acct_port,
            secret: s.secret.as_bytes().to_vec(),
        })
        .collect();
    let mut st = RadiusSettings::new(servers, cfg.state.dir.join("radius-spool"));
    st.timeout = Duration::from_secs(u64::from(r.timeout));
    st.retries = r.retries;
    st.dead_time = Duration::from_secs(u64::from(r.dead_time));
    st.status_interval = Duration::from_secs(u64::from(r.status_interval));
    st.require_message_authenticator = r.require_message_authenticator;
    st.nas_identifier = Some(r.nas_identifier.clone());
    st.nas_ip = r.nas_ip;
    st.called_station_id = r.called_station_id.clone();
    st.nas_mac = Some(nas_mac);
    st.location_id = r.location_id.clone();
    st.location_name = r.location_name.clone();
    st.mac_auth = MacAuthSettings {
        suffix: r.mac_suffix.clone(),
        password: r.mac_password.clone(),
    };
    st.swap_octets = r.swap_octets;
    st.spool_max_records = r.spool_max_records;
    // After an outage, spooled accounting should catch up soon after a
    // server is back; one attempt per 10 s toward a dead server costs nothing.
    st.spool_retry = Duration::from_secs(10);
    st.coa = r.coa.as_ref().map(|c| CoaSettings {
        listen: c.listen,
        clients: c.clients.clone(),
        event_timestamp_window: c.event_timestamp_window,
        require_event_timestamp: c.require_event_timestamp,
        nak_stale_event_timestamp: c.nak_stale_event_timestamp,
        require_message_authenticator: c.require_message_authenticator,
        ..CoaSettings::default()
    });
    st
}

/// NAS-Port of a client: its host number on the LAN, stable for the lease
/// and unique among the clients.
pub fn nas_port(network: &Ipv4Net, ip: Ipv4Addr) -> u32 {
    u32::from(ip).wrapping_sub(u32::from(network.addr))
}

/// The session limits an Access-Accept (or a CoA) grants.
pub fn limits_from_reply(r: &ReplyLimits) -> SessionLimits {
    SessionLimits {
        session_timeout: r.session_timeout.filter(|&t| t > 0),
        idle_timeout: r.idle_timeout.filter(|&t| t > 0),
        terminate_at: r.session_terminate_at,
        interim_interval: r.interim_interval.filter(|&t| t > 0),
        bandwidth_up_bps: r.bandwidth_max_up_bps.filter(|&b| b > 0),
        bandwidth_down_bps: r.bandwidth_max_down_bps.filter(|&b| b > 0),
        max_input_octets: r.max_input_octets,
        max_output_octets: r.max_output_octets,
        max_total_octets: r.max_total_octets,
    }
}

fn acct_session(r: &SessionReport, network: &Ipv4Net) -> AcctSession {
    AcctSession {
        session_id: r.session_id.clone(),
        user_name: r.user.clone(),
        mac: Some(r.mac),
        ip: Some(r.ip),
        nas_port: Some(nas_port(network, r.ip)),
        started: r.started,
        class: r.class.clone(),
        cui: r.cui.clone(),
    }
}

/// The accounting record an engine event calls for, if any.
pub fn accounting_record(ev: &Event, network: &Ipv4Net) -> Option<AcctRecord> {
    match ev {
        Event::SessionStarted(r) => Some(AcctRecord::start(&acct_session(r, network), r.at)),
        Event::InterimUpdate(r) => Some(AcctRecord::interim(
            &acct_session(r, network),
            &r.counters,
            r.at,
        )),
        Event::SessionEnded(e) => Some(AcctRecord::stop_ended(
            e,
            Some(nas_port(network, e.ip)),
            e.class.clone(),
            e.cui.clone(),
        )),
        Event::LeaseBound { .. } | Event::LeaseEnded { .. } => None,
    }
}

/// Spool the accounting an event calls for. Called from the notice thread,
/// in event order, so a session's records are spooled in order.
pub fn account(radius: &RadiusHandle, ev: &Event, network: &Ipv4Net) {
    if let Some(rec) = accounting_record(ev, network) {
        if let Err(e) = radius.account(rec) {
            // The service still sends it once; say loudly that it is not
            // safe on disk.
            tracing::error!("accounting spool: {e}; the record is sent but not kept");
        }
    }
}

/// Portal logins checked by RADIUS.
pub struct RadiusAuth {
    /// The service.
    pub radius: RadiusHandle,
    /// To find the session id the login will get.
    pub dp: DataplaneHandle,
    /// For NAS-Port.
    pub network: Ipv4Net,
}

impl Authenticator for RadiusAuth {
    fn authenticate<'a>(&'a self, req: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async move {
            // The Acct-Session-Id the session will carry, so RADIUS can tie
            // the login to its accounting.
            let session_id = match self.dp.client_by_ip(req.ip).await {
                Ok(Some(c)) => c.session_id,
                _ => String::new(),
            };
            let port = nas_port(&self.network, req.ip);
            let mut access = match &req.credentials {
                Credentials::Pap(pw) => AccessRequest::pap(
                    &req.username,
                    pw.as_bytes(),
                    req.mac,
                    req.ip,
                    &session_id,
                    port,
                ),
                Credentials::Chap {
                    ident,
                    challenge,
                    response,
                } => {
                    let mut a =
                        AccessRequest::pap(&req.username, b"", req.mac, req.ip, &session_id, port);
                    a.credentials = crate::radius::attrs::Credentials::Chap {
                        ident: *ident,
                        response: *response,
                        challenge: challenge.to_vec(),
                    };
                    a
                }
                Credentials::None => {
                    return AuthOutcome::Reject {
                        reply: Some("a user name and password are required".into()),
                    }
                }
            };
            access.state = None;
            outcome(self.radius.authenticate(access).await)
        })
    }
}

fn outcome(r: RadiusOutcome) -> AuthOutcome {
    match r {
        RadiusOutcome::Accept(reply) => AuthOutcome::Accept {
            limits: limits_from_reply(&reply),
            reply: reply.reply_message.clone(),
            class: reply.class.clone(),
            cui: reply.cui.clone(),
        },
        RadiusOutcome::Reject { reply_message } => AuthOutcome::Reject {
            reply: reply_message,
        },
        RadiusOutcome::Unreachable => AuthOutcome::Reject {
            reply: Some("the login service is not answering; please try again in a minute".into()),
        },
    }
}

/// Why MAC authentication should look at a client.
#[derive(Clone, Copy, Debug)]
pub enum MacAuthTrigger {
    /// It got or renewed a lease.
    Lease(MacAddr, Ipv4Addr),
    /// Its MAC-authenticated session ended on its own (timeout, quota, lost
    /// carrier): ask again.
    Ended(MacAddr, Ipv4Addr),
}

/// MAC authentication: every client that gets a lease and is not logged in
/// is tried once per lease (retried with backoff while no server answers);
/// an Access-Accept logs it in without the portal.
pub async fn mac_auth(
    radius: RadiusHandle,
    dp: DataplaneHandle,
    network: Ipv4Net,
    mut triggers: mpsc::UnboundedReceiver<MacAuthTrigger>,
) {
    let mut tried: std::collections::HashMap<MacAddr, Ipv4Addr> = Default::default();
    while let Some(t) = triggers.recv().await {
        let (mac, ip) = match t {
            MacAuthTrigger::Lease(mac, ip) if tried.get(&mac) == Some(&ip) => continue, // a renewal
            MacAuthTrigger::Lease(mac, ip) | MacAuthTrigger::Ended(mac, ip) => (mac, ip),
        };
        if tried.len() > 65_536 {
            tried.clear();
        }
        tried.insert(mac, ip);
        let (radius, dp) = (radius.clone(), dp.clone());
        tokio::spawn(async move {
            // Unanswered requests are tried again: 10 s, 20 s, 40 s … 5 min.
            let mut wait = Duration::from_secs(10);
            loop {
                let Ok(Some(client)) = dp.client_by_ip(ip).await else {
                    return;
                };
                if client.mac != mac || client.state == crate::session::SessionState::Authorized {
                    return;
                }
                let req =
                    radius.mac_auth_request(mac, ip, &client.session_id, nas_port(&network, ip));
                match radius.authenticate(req).await {
                    RadiusOutcome::Accept(reply) => {
                        let auth = Authorization {
                            user: Some(mac.to_dashed()),
                            limits: limits_from_reply(&reply),
                            class: reply.class.clone(),
                            cui: reply.cui.clone(),
                        };
                        match dp.authorize_with(mac, auth).await {
                            Ok(_) => tracing::info!(%mac, %ip, "MAC authentication accepted"),
                            Err(e) => tracing::warn!(%mac, "MAC authentication accepted but: {e}"),
                        }
                        return;
                    }
                    RadiusOutcome::Reject { .. } => {
                        tracing::debug!(%mac, "MAC authentication rejected: the portal decides");
                        return;
                    }
                    RadiusOutcome::Unreachable => {
                        tracing::warn!(%mac, retry_in_s = wait.as_secs(), "MAC authentication: no RADIUS server answered");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                }
            }
        });
    }
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

/// Act on CoA and Disconnect requests and answer them.
pub async fn coa(mut calls: mpsc::Receiver<CoaCall>, dp: DataplaneHandle) {
    while let Some(call) = calls.recv().await {
        let req = &call.request;
        let sessions = match dp.find_sessions(req.matcher.clone()).await {
            Ok(s) => s,
            Err(_) => {
                call.reply(CoaReply::Nak(ErrorCause::SessionContextNotRemovable));
                continue;
            }
        };
        if sessions.is_empty() {
            tracing::info!(from = %req.from, kind = ?req.kind, "CoA/Disconnect: no such session");
            call.reply(CoaReply::Nak(ErrorCause::SessionContextNotFound));
            continue;
        }
        let mut ok = true;
        for c in &sessions {
            let r = match req.kind {
                CoaKind::Disconnect => dp.logout(c.mac, EndReason::AdminReset).await.map(|_| ()),
                CoaKind::Coa => {
                    // Only what the request carries changes; the rest stays.
                    let changes = limits_from_reply(&req.changes);
                    dp.set_limits(c.mac, changes.or(&c.limits))
                        .await
                        .map(|_| ())
                }
            };
            match r {
                Ok(()) => {
                    tracing::info!(mac = %c.mac, session_id = c.session_id, kind = ?req.kind, from = %req.from, "CoA/Disconnect applied")
                }
                Err(e) => {
                    tracing::warn!(mac = %c.mac, "CoA/Disconnect failed: {e}");
                    ok = false;
                }
            }
        }
        call.reply(if ok {
            CoaReply::Ack
        } else {
            CoaReply::Nak(ErrorCause::SessionContextNotRemovable)
        });
    }
}

/// Everything the daemon keeps of RADIUS while it runs.
pub struct Aaa {
    /// The service.
    pub radius: RadiusHandle,
    /// Clients for MAC authentication to look at (when enabled).
    pub mac_auth: Option<mpsc::UnboundedSender<MacAuthTrigger>>,
}

/// The local IPv4 address the kernel uses to reach `server` (a UDP
/// `connect` sends nothing).
fn source_address(server: std::net::IpAddr) -> Option<Ipv4Addr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((server, 1812)).ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

/// Start the service, Accounting-On, MAC authentication and the CoA
/// listener. Must run inside the control-plane runtime. With `resumed`
/// (sessions of the previous process continue) no Accounting-On goes out:
/// it tells the server every session of this NAS has ended, and FreeRADIUS's
/// SQL accounting would close the sessions lassi is continuing.
pub async fn start(
    cfg: &Config,
    r: &RadiusConfig,
    nas_mac: MacAddr,
    dp: DataplaneHandle,
    resumed: bool,
) -> Result<Arc<Aaa>, String> {
    let mut settings = radius_settings(cfg, r, nas_mac);
    if settings.nas_ip.is_none() {
        // Like CoovaChilli, always send NAS-IP-Address: FreeRADIUS's stock
        // SQL accounting (radacct.nasipaddress NOT NULL) fails without it.
        settings.nas_ip = settings
            .servers
            .first()
            .and_then(|s| source_address(s.addr));
    }
    let spool: &Path = &settings.spool_dir;
    tracing::info!(servers = r.servers.len(), spool = %spool.display(), mac_auth = r.mac_auth, coa = r.coa.is_some(), "RADIUS starting");
    let (radius, coa_calls) = crate::radius::service::RadiusService::start(settings)
        .await
        .map_err(|e| format!("radius: {e}"))?;
    if resumed {
        tracing::info!("sessions resumed: no Accounting-On");
    } else if let Err(e) = radius.accounting_on() {
        tracing::error!("Accounting-On not spooled: {e}");
    }
    if let Some(calls) = coa_calls {
        tokio::spawn(coa(calls, dp.clone()));
    }
    let mac_tx = if r.mac_auth {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(mac_auth(radius.clone(), dp, cfg.lan.network, rx));
        Some(tx)
    } else {
        None
    };
    Ok(Arc::new(Aaa {
        radius,
        mac_auth: mac_tx,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Counters, EndedSession};

    fn ended(user: Option<String>, reason: EndReason) -> Event {
        Event::SessionEnded(EndedSession {
            mac: MacAddr([2, 0, 0, 0, 0, 7]),
            ip: Ipv4Addr::new(10, 1, 0, 7),
            session_id: "x".into(),
            user,
            started: 0,
            ended: 1,
            counters: Counters::default(),
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
    fn nas_port_is_the_host_number() {
        let net: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert_eq!(nas_port(&net, Ipv4Addr::new(10, 1, 0, 23)), 23);
    }
}
