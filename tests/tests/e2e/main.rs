#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! End-to-end tests against the local AWS emulator (moto's server): the real handlers, the
//! real adapters, the real event sources.

mod adapters;
mod api;
mod bench;
mod budget;
mod dispatch;
mod fairness;
mod hostile;
mod intake;
mod projection;
mod provider_settings;
mod providers;
mod published;
mod push;
mod realtime;
mod schedule;
mod stack_template;
mod templates;
mod webhooks;
mod whatsapp;
