use imagebus_bus::EventStream;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    #[bus(stream)]
    async fn events(&self) -> EventStream<String>;
    #[bus(stream)]
    fn values(&self) -> Vec<String>;
}

fn main() {}
