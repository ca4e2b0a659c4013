//! Connects the RADIUS service to the gateway: portal logins and MAC
//! authentication become Access-Requests, session events become accounting
//! records, and CoA/Disconnect requests act on sessions.
//!
//! This module is the shell: tokio tasks and the glue to the RADIUS
//! service and the data plane. What they decide lives in the engine's
//! `aaa` policies, re-exported here: `reply` (reply attributes to limits,
//! events to accounting records), `mac_auth` (whom to ask, when to ask
//! again) and `garden` (when to resolve walled-garden names again).

pub use lassi_engine::aaa::{garden, hook_env, mac_auth, reply};

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, Ipv4Net, RadiusConfig};
use crate::dataplane::Event;
use crate::io::clock::{now_ms, sleep_until};
use crate::io::forwarder::DataplaneHandle;
use crate::portal::auth::{AuthFuture, AuthOutcome, AuthRequest, Authenticator, Credentials};
use crate::radius::attrs::MacAuthSettings;
use crate::radius::coa::{CoaKind, CoaReply, ErrorCause};
use crate::radius::service::{
    AccessAnswer as RadiusOutcome, CoaCall, CoaSettings, RadiusHandle, RadiusSettings,
};
use crate::radius::AccessRequest;
use crate::radius::ReplyLimits;
use crate::session::{EndReason, SessionState};
use crate::wire::MacAddr;
use mac_auth::{
    MacAuthAction, MacAuthAnswer, MacAuthPolicy, MacAuthPolicySettings, MacAuthRequest,
    MacAuthTrigger,
};
use reply::{accounting_record, limits_from_reply, nas_port};

/// RADIUS service settings from the config.
pub fn radius_settings(cfg: &Config, r: &RadiusConfig, nas_mac: MacAddr) -> RadiusSettings {
    let mut st = RadiusSettings::new(r.servers.clone(), cfg.state.dir.join("radius-spool"));
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

/// Spool the accounting an event calls for. Called from the notice thread,
/// in event order, so a session's records are spooled in order.
/// `network` is the LAN's network address, for NAS-Port.
pub fn account(radius: &RadiusHandle, ev: &Event, network: Ipv4Addr) {
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
            let port = nas_port(self.network.addr, req.ip);
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
                    a.credentials = crate::radius::attrs::AccessCredentials::Chap {
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
            limits: limits_from_reply(&in_engine_time(reply.clone())),
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

/// A reply with its dates (Session-Terminate-Time, a wall-clock date) turned
/// into engine time, which is what the data plane compares them with.
fn in_engine_time(mut reply: Box<ReplyLimits>) -> Box<ReplyLimits> {
    reply.session_terminate_at = reply
        .session_terminate_at
        .map(crate::io::clock::engine_time_of_wall);
    reply
}

/// The policy's answer for what the RADIUS service said.
fn mac_auth_answer(r: RadiusOutcome) -> MacAuthAnswer {
    match r {
        RadiusOutcome::Accept(reply) => MacAuthAnswer::Accept(in_engine_time(reply)),
        RadiusOutcome::Reject { .. } => MacAuthAnswer::Reject,
        RadiusOutcome::Unreachable => MacAuthAnswer::Unreachable,
    }
}

/// One MAC-authentication question: asked only while the client is there
/// with its MAC and not logged in.
async fn ask(
    radius: RadiusHandle,
    dp: DataplaneHandle,
    network: Ipv4Addr,
    req: MacAuthRequest,
) -> MacAuthAnswer {
    let (mac, ip) = (req.mac, req.ip);
    match dp.client_by_ip(ip).await {
        Ok(Some(c)) if c.mac == mac && c.state != SessionState::Authorized => {
            let access = radius.mac_auth_request(mac, ip, &c.session_id, nas_port(network, ip));
            mac_auth_answer(radius.authenticate(access).await)
        }
        _ => MacAuthAnswer::NotNeeded,
    }
}

/// Carries out what the policy decided for a client.
fn carry_out(dp: &DataplaneHandle, action: MacAuthAction) {
    match action {
        MacAuthAction::Authorize {
            mac,
            ip,
            authorization,
        } => {
            let dp = dp.clone();
            tokio::spawn(async move {
                match dp.authorize_with(mac, *authorization).await {
                    Ok(_) => tracing::info!(%mac, %ip, "MAC authentication accepted"),
                    // The client left or logged in meanwhile: its doing.
                    Err(e) if !crate::portal::handler::gateway_failed(&e) => {
                        tracing::info!(%mac, "MAC authentication accepted but: {e}")
                    }
                    Err(e) => tracing::warn!(%mac, "MAC authentication accepted but: {e}"),
                }
            });
        }
        MacAuthAction::LeaveToPortal { mac } => {
            tracing::debug!(%mac, "MAC authentication rejected: the portal decides")
        }
        MacAuthAction::RetryLater { mac, in_ms, .. } => {
            tracing::warn!(%mac, retry_in_s = in_ms / 1000, "MAC authentication: no RADIUS server answered")
        }
    }
}

/// MAC authentication: carries out [`MacAuthPolicy`] (every client that
/// gets a lease and is not logged in is asked about once per lease,
/// again with backoff while no server answers; an Access-Accept logs it in
/// without the portal). `network` is the LAN's network address.
pub async fn mac_auth(
    radius: RadiusHandle,
    dp: DataplaneHandle,
    network: Ipv4Addr,
    mut triggers: mpsc::UnboundedReceiver<MacAuthTrigger>,
) {
    let mut policy = MacAuthPolicy::new(MacAuthPolicySettings::default());
    let (answer_tx, mut answers) = mpsc::unbounded_channel();
    loop {
        while let Some(req) = policy.poll_request() {
            let (radius, dp, tx) = (radius.clone(), dp.clone(), answer_tx.clone());
            tokio::spawn(async move {
                let answer = ask(radius, dp, network, req).await;
                let _ = tx.send((req, answer));
            });
        }
        while let Some(action) = policy.poll_action() {
            carry_out(&dp, action);
        }
        tokio::select! {
            t = triggers.recv() => match t {
                Some(t) => policy.handle_trigger(t),
                None => return,
            },
            Some((req, answer)) = answers.recv() => policy.handle_answer(req, answer, now_ms()),
            _ = sleep_until(policy.poll_timeout()) => policy.handle_timeout(now_ms()),
        }
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
                    let changes = limits_from_reply(&in_engine_time(Box::new(req.changes.clone())));
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
    /// What the requests say about the NAS (for the hook scripts).
    pub nas: crate::radius::attrs::NasInfo,
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

/// The settings the RADIUS service runs with (at start and after a
/// reload): [`radius_settings`], with NAS-IP-Address filled in when the
/// config leaves it out. Like CoovaChilli, lassi always sends it:
/// FreeRADIUS's stock SQL accounting (radacct.nasipaddress NOT NULL) fails
/// without it.
pub fn service_settings(cfg: &Config, r: &RadiusConfig, nas_mac: MacAddr) -> RadiusSettings {
    let mut settings = radius_settings(cfg, r, nas_mac);
    if settings.nas_ip.is_none() {
        settings.nas_ip = settings
            .servers
            .first()
            .and_then(|s| source_address(s.addr));
    }
    settings
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
    let settings = service_settings(cfg, r, nas_mac);
    let nas = settings.nas_info();
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
        tokio::spawn(mac_auth(radius.clone(), dp, cfg.lan.network.addr, rx));
        Some(tx)
    } else {
        None
    };
    Ok(Arc::new(Aaa {
        radius,
        mac_auth: mac_tx,
        nas,
    }))
}
