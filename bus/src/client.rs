//! TODO(bus helper): client (being written)
#![allow(missing_docs, missing_debug_implementations)]
pub struct Client;
pub struct ClientBuilder;
pub struct Subscription<T>(std::marker::PhantomData<T>);
