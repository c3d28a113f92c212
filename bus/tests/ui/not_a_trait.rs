#[imagebus_bus::object(module = "m")]
pub struct Iface;

fn main() {}
