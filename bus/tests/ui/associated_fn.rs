use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn make() -> Result<(), RemoteError>;
}

fn main() {}
