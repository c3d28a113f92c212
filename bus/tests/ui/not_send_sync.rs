use imagebus_bus::RemoteError;

#[imagebus_bus::object(module = "m")]
pub trait Iface {
    async fn get(&self) -> Result<u32, RemoteError>;
}

#[imagebus_bus::object(module = "m")]
pub trait OnlySend: Send {
    async fn get(&self) -> Result<u32, RemoteError>;
}

fn main() {}
