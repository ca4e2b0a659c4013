//! Live reload (`lassi reload`, SIGHUP): re-read the config file lassi was
//! started with, the users file and the pages, and apply what changed
//! without ending or pausing any session or lease.
//!
//! A reload is all or nothing. The new file must load and validate
//! ([`Config::load`]: the error names the key), every changed key must be
//! one a running lassi can take ([`diff::diff`]), and the users file must
//! read; only then is anything applied, one subsystem at a time, each by
//! its own `apply_*` function (none of which can fail half-way). Otherwise
//! lassi keeps running on the old configuration and the reply says why.
//!
//! What is applied where:
//! - portal settings, backend, users file and pages: a new [`Portal`] that
//!   shares the old one's challenges, login back-offs and form-token key,
//!   swapped into the [`PortalCell`] (the next request uses it);
//! - RADIUS servers, secrets, timers, NAS attributes, MAC-auth name and
//!   password: [`RadiusHandle::reconfigure`] (sockets, spool and sessions
//!   stay);
//! - client isolation, `portal.any_dns`, session defaults, quota action,
//!   probing, `stop_on_shutdown`: the data plane's engine, by a command
//!   between two batches of frames;
//! - the walled garden's configured entries: the data plane and the
//!   resolver task (`lassi garden add` entries stay);
//! - `[hooks]`: the next script run uses the new scripts and limits (and
//!   the NAS attributes of the new config); running ones finish;
//! - `[log]`: level, format and output at once (`--log-level` still wins);
//! - `metrics.listen`: the endpoint moves (the new address is bound before
//!   the old one closes) or turns on or off.

pub mod diff;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::aaa::RadiusAuth;
use crate::config::{AuthBackend, Config};
use crate::dataplane::{LiveSettings, LostCarrier};
use crate::hooks::Hooks;
use crate::io::forwarder::DataplaneHandle;
use crate::metrics::MetricsServer;
use crate::portal::auth::Authenticator;
use crate::portal::server::{backend_and_pages, portal_settings};
use crate::portal::{Portal, PortalCell};
use crate::radius::RadiusHandle;
use crate::wire::MacAddr;

/// What a reload did (the reply of `lassi reload`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// The config file read.
    pub file: PathBuf,
    /// The keys that changed, dotted, in file order (empty: none).
    pub changed: Vec<String>,
    /// What was read again whether or not the config changed.
    pub reread: Vec<&'static str>,
}

/// Who asked for a reload (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `lassi reload` on the control socket.
    Control,
    /// SIGHUP.
    Signal,
}

type Call = (Origin, oneshot::Sender<Result<ReloadReport, String>>);

/// Asks the daemon's reload task to reload; cloneable.
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Call>,
}

impl ReloadHandle {
    /// Reloads and returns what changed, or why nothing was applied.
    /// Reloads run one at a time, in order.
    pub async fn reload(&self, origin: Origin) -> Result<ReloadReport, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((origin, tx))
            .await
            .map_err(|_| "lassi is stopping".to_string())?;
        rx.await.map_err(|_| "lassi is stopping".to_string())?
    }
}

/// The running configuration and the parts of lassi a reload changes.
pub struct Live {
    /// The file lassi was started with (`lassi run -c`).
    pub path: PathBuf,
    /// The configuration in force.
    pub cfg: Config,
    /// lassi's MAC on the LAN (portal settings, NAS attributes).
    pub gateway_mac: MacAddr,
    /// The data plane.
    pub dp: DataplaneHandle,
    /// The portal being served.
    pub portal: PortalCell,
    /// The RADIUS service, when `[radius]` is configured.
    pub radius: Option<RadiusHandle>,
    /// The metrics endpoint (on or off).
    pub metrics: Arc<MetricsServer>,
    /// The connection and uplink scripts.
    pub hooks: Hooks,
}

/// Starts the reload task on the current runtime.
pub fn spawn(live: Live) -> ReloadHandle {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(serve(live, rx));
    ReloadHandle { tx }
}

async fn serve(mut live: Live, mut rx: mpsc::Receiver<Call>) {
    while let Some((origin, reply)) = rx.recv().await {
        let result = live.reload().await;
        match &result {
            Ok(r) => tracing::info!(
                ?origin,
                file = %r.file.display(),
                changed = %if r.changed.is_empty() { "-".to_string() } else { r.changed.join(",") },
                "configuration reloaded"
            ),
            Err(e) => tracing::warn!(?origin, "reload refused, the old configuration stays: {e}"),
        }
        let _ = reply.send(result);
    }
}

impl Live {
    /// One reload: check everything, then apply everything.
    pub async fn reload(&mut self) -> Result<ReloadReport, String> {
        let new = Config::load(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let d = diff::diff(&self.cfg, &new);
        if let Some(refusal) = d.refusal() {
            return Err(format!("{}: {refusal}", self.path.display()));
        }
        // Fallible steps before anything changes: the files, and the
        // metrics address (bound before the old one is let go; a failure
        // keeps the old listener and refuses the reload).
        let portal = self.next_portal(&new)?;
        self.metrics
            .rebind(new.metrics.listen)
            .await
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        // From here on nothing fails half-way.
        apply_walled_garden(&self.dp, &self.cfg, &new)?;
        apply_dataplane(&self.dp, &new)?;
        let radius = new
            .radius
            .as_ref()
            .map(|r| crate::aaa::service_settings(&new, r, self.gateway_mac));
        let nas = radius.as_ref().map(|st| st.nas_info());
        if let (Some(service), Some(settings)) = (&self.radius, radius) {
            service.reconfigure(settings)?;
        }
        self.portal.replace(portal);
        self.hooks.update(new.hooks.clone());
        let gateway = crate::daemon::gateway_info(&new, self.gateway_mac, nas);
        self.hooks.set_gateway(gateway);
        crate::logger::apply(&new.log);
        self.cfg = new;
        Ok(ReloadReport {
            file: self.path.clone(),
            changed: d.changed,
            reread: reread(&self.cfg),
        })
    }

    /// The portal `new` describes, with the users file and pages read
    /// again; it shares the running portal's challenges and back-offs.
    fn next_portal(&self, new: &Config) -> Result<Portal, String> {
        let radius_auth = self.radius.as_ref().map(|r| {
            Box::new(RadiusAuth {
                radius: r.clone(),
                dp: self.dp.clone(),
                network: new.lan.network,
            }) as Box<dyn Authenticator>
        });
        let (auth, pages) = backend_and_pages(new, radius_auth)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let settings = portal_settings(&new.portal, new.lan.gateway, self.gateway_mac);
        Ok(self.portal.current().reconfigured(settings, auth, pages))
    }
}

/// The files read again at every reload.
fn reread(cfg: &Config) -> Vec<&'static str> {
    let mut r = Vec::new();
    if cfg.portal.auth == AuthBackend::Local {
        r.push("portal.users_file");
    }
    if cfg.portal.pages_dir.is_some() {
        r.push("portal.pages_dir");
    }
    r
}

/// The engine's share of `cfg` that may change live.
pub fn live_settings(cfg: &Config) -> LiveSettings {
    LiveSettings {
        client_isolation: cfg.lan.client_isolation,
        any_dns: cfg.portal.any_dns,
        quota_action: cfg.session.quota_action,
        lost_carrier: LostCarrier {
            silent_secs: cfg.session.probe_after,
            interval_secs: cfg.session.probe_interval,
            probes: cfg.session.probes,
        },
        default_limits: cfg.session.defaults.clone(),
    }
}

/// Client isolation, DNS, session defaults, quota action and probing: to
/// the data plane, applied between two batches of frames.
fn apply_dataplane(dp: &DataplaneHandle, cfg: &Config) -> Result<(), String> {
    dp.set_live_settings(live_settings(cfg), cfg.session.stop_on_shutdown)
}

/// The configured walled garden: entries added with `lassi garden add`
/// stay; host names are resolved (and dropped) by the resolver task.
fn apply_walled_garden(dp: &DataplaneHandle, old: &Config, new: &Config) -> Result<(), String> {
    if old.portal.walled_garden == new.portal.walled_garden {
        return Ok(());
    }
    dp.set_configured_garden(new.portal.walled_garden.clone())
}
