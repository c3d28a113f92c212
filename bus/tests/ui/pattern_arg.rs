use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn skip(&self, _: u32) -> Result<(), RemoteError>;
}

fn main() {}
