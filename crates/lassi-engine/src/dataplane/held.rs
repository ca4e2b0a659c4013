//! Packets the sessions' shapers hold back, counted across all sessions so
//! that a router's memory bounds them.

use std::collections::HashSet;

use crate::session::{FastBuildHasher, Held, ShapeVerdict, Shaper};
use crate::wire::vnet::VnetHdr;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Most bytes held by all shapers together: a router has little memory.
pub(super) const MAX_HELD_BYTES: usize = 4 << 20;

/// What a shaper did with a packet offered to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shaping {
    /// It may go now: count it and send it on.
    Pass,
    /// Queued; it comes out of [`Engine::release_held`](super::Engine::release_held).
    Held,
    /// Over the shaper's or the engine's limit: drop it.
    Drop,
}

/// The sessions whose shapers hold packets, and how many bytes they hold.
#[derive(Debug, Default)]
pub(super) struct Holding {
    /// Sessions whose shapers hold packets.
    pub sessions: HashSet<MacAddr, FastBuildHasher>,
    /// Bytes held by all of them.
    pub bytes: usize,
    /// When [`Engine::release_held`](super::Engine::release_held) last ran:
    /// the shapers' release times are measured from it.
    pub last_release: UnixMillis,
}

impl Holding {
    /// Offer one packet (`packet`, standing for `footprint` = (packets,
    /// IP bytes)) of session `mac` to one direction's shaper.
    #[inline]
    pub fn offer(
        &mut self,
        shaper: &mut Shaper,
        mac: MacAddr,
        now: UnixMillis,
        vnet: &VnetHdr,
        packet: &[u8],
        (packets, octets): (u64, u64),
    ) -> Shaping {
        if shaper.unlimited() {
            return Shaping::Pass;
        }
        match shaper.offer(now, octets, packet.len()) {
            ShapeVerdict::Pass => Shaping::Pass,
            ShapeVerdict::Hold if self.bytes + packet.len() <= MAX_HELD_BYTES => {
                shaper.hold(Held {
                    vnet: *vnet,
                    packet: packet.to_vec(),
                    packets,
                    octets,
                });
                self.bytes += packet.len();
                self.sessions.insert(mac);
                Shaping::Held
            }
            ShapeVerdict::Hold | ShapeVerdict::Drop => Shaping::Drop,
        }
    }
}
