#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! The checks that need no emulator (and so no Python): every sample in `events/` read as its
//! function receives it, the OpenAPI document against the routers, the SAM template against
//! the local stack and the handlers. `cargo test -p herald-e2e --test contract` runs them alone.

mod catalog;
mod openapi;
mod samples;
mod template;
