use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn set(&self, name: impl Into<String> + Send) -> Result<(), RemoteError>;
}

fn main() {}
