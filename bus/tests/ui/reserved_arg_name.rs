use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn put(&self, __inputs: Vec<u8>) -> Result<(), RemoteError>;
}

fn main() {}
