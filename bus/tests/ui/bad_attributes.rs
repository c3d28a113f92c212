use imagebus_bus::{EventStream, RemoteError};

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    #[bus(rename = "X")]
    async fn a(&self) -> Result<u32, RemoteError>;
    #[bus(name = "Not A Name")]
    async fn b(&self) -> Result<u32, RemoteError>;
    // A misspelt `stream` is reported once, not as a non-async method too.
    #[bus(strem)]
    fn c(&self) -> EventStream<u32>;
}

#[imagebus_bus::object(module = "m.x", object = "o")]
pub trait Other: Send + Sync {}

// The trait is still emitted when the #[object] arguments are wrong: no extra errors here.
pub fn uses_other(_: &dyn Other) {}

fn main() {}
