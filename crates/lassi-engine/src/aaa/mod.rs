//! AAA policies: what to do with RADIUS answers and when to ask again,
//! driven by time passed in (the shell's `lassi::aaa` carries them out).
//!
//! - [`reply`]: reply attributes to session limits, events to accounting
//!   records, NAS-Port.
//! - [`mac_auth`]: MAC authentication's questions, retries and back-off.
//! - [`garden`]: when each walled-garden name is resolved again.
//! - [`garden_book`]: the garden's entries, configured or operator-added.
//! - [`hook_env`]: the environment of the operator's connection scripts.

pub mod garden;
pub mod garden_book;
pub mod hook_env;
pub mod mac_auth;
pub mod reply;
