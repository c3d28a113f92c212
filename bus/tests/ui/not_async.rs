use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    fn list(&self) -> Result<Vec<u32>, RemoteError>;
}

fn main() {}
