//! herald-core: Herald's domain, with no AWS SDK in it.
//!
//! The event contract is parsed in [`event`], turned into notifications by [`intake`] with the
//! [`directory`]'s preferences and the [`template`] catalog, and sent by [`dispatch`] through the
//! [`ports`] that the adapters implement.

pub mod consent;
pub mod delivery;
pub mod directory;
pub mod dispatch;
pub mod event;
pub mod identity;
pub mod ids;
pub mod intake;
pub mod model;
pub mod ports;
pub mod projection;
pub mod providers;
pub mod retry;
pub mod scheduler;
pub mod template;
pub mod time;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
