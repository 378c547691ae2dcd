//! herald-core: Herald's domain, with no AWS SDK in it.
//!
//! The event contract is parsed in [`event`], turned into notifications by [`intake`] with the
//! [`directory`]'s preferences and the [`template`] catalog, and sent by [`dispatch`] through the
//! [`ports`] that the adapters implement.

pub mod breaker;
pub mod caller;
pub mod consent;
pub mod directory;
pub mod directory_update;
pub mod dispatch;
pub mod event;
pub mod identity;
pub mod ids;
pub mod intake;
pub mod json;
pub mod lifecycle_events;
pub mod model;
pub mod ports;
pub mod projection;
pub mod provider_events;
pub mod providers;
pub mod push;
pub mod push_apps;
pub mod rate_limit;
pub mod realtime;
pub mod record;
pub mod retry;
pub mod routing;
pub mod scheduler;
pub mod scheduling;
pub mod settings;
pub mod sms;
pub mod stats;
pub mod telemetry;
pub mod template;
pub mod time;
pub mod tracking;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
