use imagebus_bus::{EventStream, RemoteError};

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn get(&self) -> Result<u32, RemoteError>;
    #[bus(name = "Get")]
    async fn get_other(&self) -> Result<u32, RemoteError>;
    async fn changes(&self) -> Result<u32, RemoteError>;
    #[bus(stream, name = "Changes")]
    fn events(&self) -> EventStream<u32>;
}

fn main() {}
