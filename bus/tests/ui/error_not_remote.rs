#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn count(&self) -> Result<u32, String>;
}

fn main() {}
