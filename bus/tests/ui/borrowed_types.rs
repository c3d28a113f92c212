use imagebus_bus::RemoteError;
use std::borrow::Cow;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    async fn by_ref(&self, name: &str) -> Result<(), RemoteError>;
    async fn by_lifetime(&self, name: Cow<'static, str>) -> Result<(), RemoteError>;
    async fn returns_ref(&self) -> Result<&'static str, RemoteError>;
}

fn main() {}
