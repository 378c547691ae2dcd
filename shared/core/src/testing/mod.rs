//! In-memory ports for unit tests of the domain. Not for production: no persistence, no
//! durability, one process.

use std::sync::{Mutex, MutexGuard};

mod directory;
mod push;
mod realtime;
mod sending;
mod store;

pub use directory::*;
pub use push::*;
pub use realtime::*;
pub use sending::*;
pub use store::*;

/// DynamoDB's item size limit, which the memory store enforces the same way.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
