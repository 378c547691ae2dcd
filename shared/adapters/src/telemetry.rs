//! Logging for the functions: JSON lines for CloudWatch, level from `RUST_LOG` (default info).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    // Lambda adds its own timestamps; without ANSI colours the lines stay parseable.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()));
    let _ = subscriber.try_init();
}

/// `RUST_LOG` as levels per target (`info`, `warn,herald_dispatch=debug`); unset or
/// unreadable, info. Targets rather than `EnvFilter`: the functions need no span or regex
/// filters, and leave out the regex engine those bring (some 330 KiB of each binary).
fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn rust_log_sets_the_level_per_target_and_defaults_to_info() {
        let unset = filter(None);
        assert!(unset.would_enable("herald_dispatch", &Level::INFO));
        assert!(!unset.would_enable("herald_dispatch", &Level::DEBUG));

        let warn = filter(Some("warn"));
        assert!(!warn.would_enable("herald_dispatch", &Level::INFO));
        assert!(warn.would_enable("herald_dispatch", &Level::WARN));

        let per_target = filter(Some("warn,herald_dispatch=debug"));
        assert!(per_target.would_enable("herald_dispatch", &Level::DEBUG));
        assert!(!per_target.would_enable("aws_smithy_runtime", &Level::INFO));

        let unreadable = filter(Some("herald_dispatch=loud"));
        assert!(unreadable.would_enable("herald_dispatch", &Level::INFO));
        assert!(!unreadable.would_enable("herald_dispatch", &Level::DEBUG));
    }
}
