//! herald-local: Herald on the local AWS emulator. It stands up the resources of
//! `infra/template.yaml` on moto's server and drives the real handlers from the real event
//! sources, so a run shows what a deployment would do.

pub mod chaos;
pub mod cost;
pub mod dev_tokens;
pub mod driver;
pub mod emulator;
pub mod error;
pub mod faults;
pub mod inbox;
pub mod keys;
pub mod latency;
pub mod perf;
pub mod preview;
pub mod pump;
pub mod requests;
pub mod samples;
pub mod serve;
pub mod stack;
pub mod stand_ins;
pub mod stream;
pub mod websocket;

pub use driver::{EventReport, LocalStack, NotificationReport, Options};
pub use emulator::Emulator;
pub use error::LocalError;
pub use stack::{Names, Stack};
