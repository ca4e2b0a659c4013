//! The operator's verbs (chilli_query parity) between the control socket and
//! the data plane: commands carried to the data-plane thread, the block
//! list's file, and the walled garden's live edits.
//!
//! The data plane decides (see `lassi_engine::dataplane::operator`); this
//! module only carries requests there and keeps what must outlive one
//! request: `blocked.json` in the state directory (written atomically, so
//! a block survives a restart) and the garden's entries by origin
//! ([`GardenBook`]), from which the data plane's networks and suffixes and
//! the resolver's host names are derived.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use lassi_engine::aaa::garden_book::{GardenBook, GardenEntry, Origin};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::forwarder::{Command, DataplaneHandle};
use crate::config::WalledGarden;
use crate::dataplane::{BlockOutcome, Engine, GardenOpen, LeaseFreed};
use crate::session::{Authorization, Client, ClientFilter, EndReason, EndedSession};
use crate::store::JsonFile;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// A request for the data-plane thread (carried as [`Command::Operator`]).
pub enum OperatorCommand {
    /// The clients matching a filter.
    Clients(ClientFilter, oneshot::Sender<Vec<Client>>),
    /// Log in the client a filter designates by IP or MAC (the
    /// authorization boxed: it is large next to the other commands).
    Authorize(ClientFilter, Box<Authorization>, Reply<Client>),
    /// End the sessions a filter designates.
    Logout(ClientFilter, Reply<Vec<EndedSession>>),
    /// Block a MAC; the answer carries the block list after it.
    Block(MacAddr, Reply<(BlockOutcome, Vec<MacAddr>)>),
    /// Unblock a MAC; the answer carries the block list after it.
    Unblock(MacAddr, Reply<Vec<MacAddr>>),
    /// The block list.
    Blocked(oneshot::Sender<Vec<MacAddr>>),
    /// Free the lease of the client a filter designates by IP or MAC.
    Release(ClientFilter, Reply<(MacAddr, LeaseFreed)>),
    /// Replace the garden's networks, suffixes and host names.
    SetGarden(
        Vec<crate::wire::Ipv4Net>,
        Vec<lassi_engine::wire::ipv6::Ipv6Net>,
        Vec<String>,
        Vec<String>,
    ),
    /// What the garden opens now.
    GardenOpen(oneshot::Sender<GardenOpen>),
}

/// Where a fallible answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, String>>;

impl OperatorCommand {
    /// Carry the request out on the engine (on the data-plane thread).
    pub fn run(self, engine: &mut Engine, now: UnixMillis) {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        match self {
            OperatorCommand::Clients(f, reply) => {
                let _ = reply.send(engine.clients_matching(&f));
            }
            OperatorCommand::Authorize(f, auth, reply) => {
                let r = engine
                    .client_mac(&f)
                    .map_err(|e| err(&e))
                    .and_then(|mac| engine.authorize(mac, *auth, now).map_err(|e| err(&e)));
                let _ = reply.send(r);
            }
            OperatorCommand::Logout(f, reply) => {
                let r = engine.logout_matching(&f, EndReason::AdminReset, now);
                let _ = reply.send(r.map_err(|e| err(&e)));
            }
            OperatorCommand::Block(mac, reply) => {
                let out = engine.block(mac, now);
                let _ = reply.send(Ok((out, engine.blocked_macs())));
            }
            OperatorCommand::Unblock(mac, reply) => {
                let r = if engine.unblock(mac) {
                    Ok(engine.blocked_macs())
                } else {
                    Err(format!("{mac} is not blocked"))
                };
                let _ = reply.send(r);
            }
            OperatorCommand::Blocked(reply) => {
                let _ = reply.send(engine.blocked_macs());
            }
            OperatorCommand::Release(f, reply) => {
                let r = engine.client_mac(&f).map_err(|e| err(&e)).and_then(|mac| {
                    let freed = engine.release_lease(mac, now).map_err(|e| err(&e))?;
                    Ok((mac, freed))
                });
                let _ = reply.send(r);
            }
            OperatorCommand::SetGarden(nets, nets6, suffixes, hosts) => {
                engine.set_walled_garden(nets, suffixes, hosts);
                engine.set_walled_garden6(nets6);
            }
            OperatorCommand::GardenOpen(reply) => {
                let _ = reply.send(engine.garden_open(now));
            }
        }
    }
}

/// The engine's form of a config entry.
pub fn garden_entry(w: &WalledGarden) -> GardenEntry {
    match w {
        WalledGarden::Net(n) => GardenEntry::Net(*n),
        WalledGarden::Net6(n) => GardenEntry::Net6(*n),
        WalledGarden::Host(h) => GardenEntry::Host(h.clone()),
        WalledGarden::Suffix(s) => GardenEntry::Suffix(s.clone()),
    }
}

/// What outlives one operator request: the block list's file and the
/// walled garden's entries.
pub struct OperatorState {
    blocked_file: JsonFile,
    /// Held across a block/unblock and the write of its result, so the
    /// file never ends up older than the engine's list.
    blocked_lock: tokio::sync::Mutex<()>,
    garden: Mutex<GardenBook>,
    garden_hosts: watch::Sender<Vec<String>>,
    garden_addresses: Mutex<Vec<(String, Vec<Ipv4Addr>)>>,
}

impl OperatorState {
    /// The state for a garden configured as `configured`, with the block
    /// list kept in `state_dir/blocked.json`.
    pub fn open(state_dir: &Path, configured: &[WalledGarden]) -> Result<OperatorState, String> {
        let blocked_file =
            JsonFile::open(state_dir, "blocked.json").map_err(|e| format!("state.dir: {e}"))?;
        let book = GardenBook::new(configured.iter().map(garden_entry).collect());
        let (garden_hosts, _) = watch::channel(book.hosts());
        Ok(OperatorState {
            blocked_file,
            blocked_lock: tokio::sync::Mutex::new(()),
            garden: Mutex::new(book),
            garden_hosts,
            garden_addresses: Mutex::new(Vec::new()),
        })
    }

    /// The MACs blocked when lassi last ran.
    fn saved_blocked(&self) -> Vec<MacAddr> {
        self.blocked_file.load()
    }

    /// Prepare a freshly built engine: the garden's host names are
    /// DNS-snooped like its suffixes, and the MACs blocked when lassi last
    /// ran are blocked again (a session resumed for one ends, its lease is
    /// freed).
    pub fn prepare_engine(&self, engine: &mut Engine, now: UnixMillis) {
        {
            let book = self.garden.lock().unwrap_or_else(|e| e.into_inner());
            engine.set_walled_garden(book.nets(), book.suffixes(), book.hosts());
            engine.set_walled_garden6(book.nets6());
        }
        let macs = self.saved_blocked();
        for &mac in &macs {
            engine.block(mac, now);
        }
        if !macs.is_empty() {
            tracing::info!(macs = macs.len(), "blocked MACs restored");
        }
    }

    /// The walled garden's host names, now and as they change (for the
    /// resolver task).
    pub fn garden_hosts(&self) -> watch::Receiver<Vec<String>> {
        self.garden_hosts.subscribe()
    }

    /// The resolver's latest addresses of each host name.
    pub fn publish_garden_addresses(&self, addrs: Vec<(String, Vec<Ipv4Addr>)>) {
        *self
            .garden_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    fn save_blocked(&self, macs: &[MacAddr]) -> Result<(), String> {
        self.blocked_file
            .save(macs)
            .map_err(|e| format!("saving the block list: {e}"))
    }
}

/// One garden entry in `lassi garden list`.
#[derive(Clone, Debug, Serialize)]
pub struct GardenListEntry {
    /// The entry, in config syntax.
    pub entry: GardenEntry,
    /// `configured` or `operator`.
    pub origin: Origin,
    /// For a host name, what it resolved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Ipv4Addr>>,
}

/// `lassi garden list`.
#[derive(Clone, Debug, Serialize)]
pub struct GardenList {
    /// Every entry with its origin.
    pub entries: Vec<GardenListEntry>,
    /// What the data plane opens now.
    pub open: GardenOpen,
}

impl DataplaneHandle {
    /// Send an operator command and wait for its answer.
    async fn operator<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> OperatorCommand,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Operator(make(tx)))?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// The clients matching `f` (every client for an empty filter). A
    /// filter that matches nobody is an error naming what was asked for.
    pub async fn clients(&self, f: ClientFilter) -> Result<Vec<Client>, String> {
        let found = self
            .operator(|tx| OperatorCommand::Clients(f.clone(), tx))
            .await?;
        if found.is_empty() && !f.is_empty() {
            let what = f.describe();
            return Err(if f.user.is_some() || f.session_id.is_some() {
                format!("no session for {what}")
            } else {
                format!("no client with {what}")
            });
        }
        Ok(found)
    }

    /// Log in the client `f` designates (by IP or MAC) with `auth`; unset
    /// limits come from `session.defaults`, as for any login.
    pub async fn authorize_by(
        &self,
        f: ClientFilter,
        auth: Authorization,
    ) -> Result<Client, String> {
        self.operator(|tx| OperatorCommand::Authorize(f, Box::new(auth), tx))
            .await?
    }

    /// End every session `f` designates (Admin-Reset).
    pub async fn logout_by(&self, f: ClientFilter) -> Result<Vec<EndedSession>, String> {
        self.operator(|tx| OperatorCommand::Logout(f, tx)).await?
    }

    /// Block `mac` and save the block list.
    pub async fn block(&self, mac: MacAddr) -> Result<BlockOutcome, String> {
        let _guard = self.operator.blocked_lock.lock().await;
        let (out, list) = self
            .operator(|tx| OperatorCommand::Block(mac, tx))
            .await??;
        self.operator.save_blocked(&list)?;
        Ok(out)
    }

    /// Unblock `mac` and save the block list.
    pub async fn unblock(&self, mac: MacAddr) -> Result<(), String> {
        let _guard = self.operator.blocked_lock.lock().await;
        let list = self
            .operator(|tx| OperatorCommand::Unblock(mac, tx))
            .await??;
        self.operator.save_blocked(&list)
    }

    /// The blocked MACs.
    pub async fn blocked(&self) -> Result<Vec<MacAddr>, String> {
        self.operator(OperatorCommand::Blocked).await
    }

    /// Free the lease of the client `f` designates, as if it had sent
    /// DHCPRELEASE.
    pub async fn release_lease(&self, f: ClientFilter) -> Result<(MacAddr, LeaseFreed), String> {
        self.operator(|tx| OperatorCommand::Release(f, tx)).await?
    }

    /// Add an operator entry to the walled garden (runtime only).
    pub fn garden_add(&self, entry: &WalledGarden) -> Result<(), String> {
        self.edit_garden(|book| book.add(garden_entry(entry)))
    }

    /// Remove an operator entry from the walled garden.
    pub fn garden_remove(&self, entry: &WalledGarden) -> Result<(), String> {
        self.edit_garden(|book| book.remove(&garden_entry(entry)))
    }

    /// Replace the CONFIGURED walled-garden entries live (a reload), keeping
    /// the operator's: the data plane's networks and suffixes change at
    /// once, host names gone stop being open, new ones are resolved.
    pub fn set_configured_garden(&self, configured: Vec<WalledGarden>) -> Result<(), String> {
        let entries = configured.iter().map(garden_entry).collect();
        self.edit_garden(|book| {
            book.set_configured(entries);
            Ok::<(), String>(())
        })
    }

    /// Edit the garden and hand the result to the data plane and the
    /// resolver (under the lock, so edits arrive in order).
    fn edit_garden<E: std::fmt::Display>(
        &self,
        edit: impl FnOnce(&mut GardenBook) -> Result<(), E>,
    ) -> Result<(), String> {
        let mut book = (self.operator.garden.lock()).unwrap_or_else(|e| e.into_inner());
        edit(&mut book).map_err(|e| e.to_string())?;
        self.send(Command::Operator(OperatorCommand::SetGarden(
            book.nets(),
            book.nets6(),
            book.suffixes(),
            book.hosts(),
        )))?;
        self.operator.garden_hosts.send_replace(book.hosts());
        Ok(())
    }

    /// Every garden entry with its origin and addresses, and what the data
    /// plane opens now.
    pub async fn garden_list(&self) -> Result<GardenList, String> {
        let entries = {
            let book = (self.operator.garden.lock()).unwrap_or_else(|e| e.into_inner());
            let addrs = (self.operator.garden_addresses.lock()).unwrap_or_else(|e| e.into_inner());
            (book.entries().into_iter())
                .map(|(entry, origin)| {
                    let addresses = match &entry {
                        GardenEntry::Host(h) => Some(
                            (addrs.iter().find(|(n, _)| n == h))
                                .map(|(_, a)| a.clone())
                                .unwrap_or_default(),
                        ),
                        _ => None,
                    };
                    GardenListEntry {
                        entry,
                        origin,
                        addresses,
                    }
                })
                .collect()
        };
        let open = self.operator(OperatorCommand::GardenOpen).await?;
        Ok(GardenList { entries, open })
    }
}
