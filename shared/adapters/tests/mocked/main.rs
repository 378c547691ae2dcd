//! The adapters against the SDK's own mocks: the answers an emulator rarely or never gives
//! (a condition that fails, throttling, unprocessed items, an item too large or unreadable).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod breakers;
mod common;
mod connections;
mod directory;
mod eventbridge;
mod rate_limits;
mod ses;
mod sns_push;
mod sqs;
mod store;
mod templates;
mod views;
mod websocket;
