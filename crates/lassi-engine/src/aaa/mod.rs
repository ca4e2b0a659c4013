//! AAA policies: what to do with RADIUS answers and when to ask again,
//! driven by time passed in (the shell's `lassi::aaa` carries them out).
//!
//! - [`reply`]: reply attributes to session limits, events to accounting
//!   records, NAS-Port.
//! - [`mac_auth`]: MAC authentication's questions, retries and back-off.
//! - [`garden`]: when each walled-garden name is resolved again.
//! - [`hook_env`]: the environment of the operator's connection scripts.

pub mod garden;
pub mod hook_env;
pub mod mac_auth;
pub mod reply;
