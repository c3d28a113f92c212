use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn ping(&self) -> Result<(), RemoteError> {
        Ok(())
    }
}

fn main() {}
