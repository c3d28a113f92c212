#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn count(&self) -> u32;
    async fn nothing(&self);
}

fn main() {}
