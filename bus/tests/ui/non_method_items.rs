use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    const LIMIT: u32;
    type Item;
    async fn get(&self) -> Result<u32, RemoteError>;
}

#[imagebus_bus::object(module = "m")]
pub trait Generic<T>: Send + Sync {
    async fn get(&self) -> Result<u32, RemoteError>;
}

fn main() {}
