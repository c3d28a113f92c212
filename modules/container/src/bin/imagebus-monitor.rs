//! `imagebus-monitor <config.json>`: the per-container monitor started by the container
//! actor (see `imagebus_sys::monitor`). Not meant to be run by hand.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let code = match (args.next(), args.next()) {
        (Some(config), None) => imagebus_container::monitor_main(std::path::Path::new(&config)),
        _ => 2,
    };
    std::process::exit(code);
}
