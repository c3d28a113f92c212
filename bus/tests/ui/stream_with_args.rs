use imagebus_bus::EventStream;

#[imagebus_bus::object(module = "m")]
pub trait Iface: Send + Sync {
    #[bus(stream)]
    fn events(&self, filter: String) -> EventStream<String>;
}

fn main() {}
