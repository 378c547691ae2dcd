//! Logging for the functions: JSON lines for CloudWatch, level from `RUST_LOG` (default info).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Lambda adds its own timestamps; without ANSI colours the lines stay parseable.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}
