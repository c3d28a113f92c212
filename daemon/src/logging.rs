//! tracing subscriber of the daemon: stdout (zinit captures it), text or JSON.

use crate::args::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. The filter is IMAGEBUS_LOG, else RUST_LOG, else `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("IMAGEBUS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // zinit and log files get plain text; a terminal gets colours.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
