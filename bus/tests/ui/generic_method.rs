use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn put<T: serde::Serialize + Send>(&self, value: T) -> Result<(), RemoteError>;
}

fn main() {}
