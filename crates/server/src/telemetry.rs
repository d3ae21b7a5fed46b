//! Logging: JSON lines on stdout, one object per event with its fields at the top level and the
//! current request's span (so its request id) on every line logged while handling it.

use tracing_subscriber::EnvFilter;

/// The target of the lines a supervisor relies on (the `listening` line); shown at every level.
pub const ANNOUNCE: &str = "gatehouse_announce";

/// Installs the JSON logger with a tracing filter such as `info` or `gatehouse_server=debug`.
pub fn init(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|error| {
        format!("log.level `{filter}` is not a valid filter ({error}); use info, debug or warn")
    })?;
    let filter = filter.add_directive(
        format!("{ANNOUNCE}=info")
            .parse()
            .map_err(|error| format!("the announcement filter is invalid: {error}"))?,
    );
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init()
        .map_err(|error| format!("logging was already set up: {error}"))
}
