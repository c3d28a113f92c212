//! `#[object]`: turns an interface trait into a bus server dispatcher, a typed client stub
//! and a forwarding trait for wrappers.
//!
//! Use it through the re-export `imagebus_bus::object`; see its documentation there.
#![warn(missing_docs)]

mod attr;
mod forward;
mod model;
mod server;
mod stub;

use attr::{is_async_trait, ObjectArgs};
use heck::ToSnakeCase;
use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::{Ident, ItemTrait, LitStr, Visibility};

/// Turns an interface trait into a bus server dispatcher, a typed client stub and a
/// forwarding trait for wrappers.
///
/// ```text
/// use imagebus_bus::{EventStream, RemoteError};
///
/// #[imagebus_bus::object(module = "calc", name = "calculator", version = "1")]
/// pub trait Calculator: Send + Sync {
///     /// Wire name `Add`.
///     async fn add(&self, a: f64, b: f64) -> Result<f64, RemoteError>;
///     /// Wire name `DivMod`; a tuple result is Go's multi-value return (a msgpack array).
///     #[bus(name = "DivMod")]
///     async fn div_mod(&self, a: i64, b: i64) -> Result<(i64, i64), RemoteError>;
///     /// Event `Results`, published on `calc.calculator@1.Results`.
///     #[bus(stream)]
///     fn results(&self) -> EventStream<f64>;
/// }
/// ```
///
/// # Arguments
/// - `module = ".."`: the module that serves the object; the stub's `new` uses it. Without
///   it the stub only has `with_module`.
/// - `name = ".."`: the object name; default: the trait name in snake_case.
/// - `version = ".."`: the object version; default `"1.0"` (as Go zbus and rbus).
///
/// # What it generates, for trait `X`
/// - the trait itself, with `#[async_trait]` applied (so `Arc<dyn X>` works) and the
///   `#[bus(..)]` helper attributes removed;
/// - `XServer<T: X + ?Sized>`: `new(Arc<T>)`, implements `imagebus_bus::Object`;
/// - `XStub`: `new(client)`, `with_module(client, module)`, `with_timeout(d)`,
///   `MODULE`/`NAME`/`VERSION`, `object_id()`, and `impl X for XStub`;
/// - `XForward` (with `X`'s supertraits) and `impl<F: XForward + ?Sized> X for F`: a wrapper
///   (a swappable slot, a proxy) implements `X` by implementing only
///   `type Target: X + ?Sized` and `async fn forward_target(&self) -> Result<Arc<Self::Target>,
///   RemoteError>`; every method becomes `forward_target().await?.method(args).await`. When
///   `X` has stream methods, `XForward` also requires
///   `fn forward_stream<E: Send + 'static>(&self, open: fn(&Self::Target) -> EventStream<E>)
///   -> EventStream<E>`, which opens stream `open` (`|t| t.events()`) on the target(s). A type
///   implements either `X` or `XForward`, never both; no `impl X for Arc<T>` or `Box<T>` is
///   generated (see `forward.rs`).
///
/// # Methods
/// - `async fn name(&self, arg: A, ..) -> Result<T, RemoteError>`: wire name is the
///   PascalCase of the Rust name, or `#[bus(name = "GoName")]`. Arguments and `T` must be
///   owned serde types. `T = ()` sends nil; a tuple `T` is Go's multi-value return.
/// - `#[bus(stream)] fn name(&self) -> EventStream<T>`: an event source, started once when
///   the server starts; its event name follows the same rule.
///
/// The trait must have `Send + Sync` supertraits and no generics.
///
/// Anything else is a compile error, never silently skipped: other receivers (`self`,
/// `&mut self`, none), non-async methods, generics, other return types, non-identifier
/// argument patterns, borrowed or `impl Trait` types, default bodies, stream methods with
/// arguments, duplicate wire names, associated consts or types.
#[proc_macro_attribute]
pub fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item = match syn::parse::<ItemTrait>(item) {
        Ok(item) => item,
        Err(e) => {
            let msg = format!("#[object] goes on a trait declaration: {e}");
            return syn::Error::new(e.span(), msg).to_compile_error().into();
        }
    };
    let mut args = ObjectArgs::default();
    let parser = syn::meta::parser(|meta| args.parse(meta));
    match syn::parse::Parser::parse(parser, attr) {
        Ok(()) => expand(args, &mut item).into(),
        Err(e) => {
            // Still emit the trait, so that its users do not add errors of their own.
            let _ = model::read(&mut item);
            let errors = e.to_compile_error();
            let item = clean_trait(&mut item);
            quote! { #errors #item }.into()
        }
    }
}

/// The trait as emitted: async-trait applied once (a user-written one would apply it
/// twice), `#[bus]` attributes already removed by `model::read`.
fn clean_trait(item: &mut ItemTrait) -> TokenStream2 {
    item.attrs.retain(|a| !is_async_trait(a));
    quote! {
        #[::imagebus_bus::__private::async_trait]
        #item
    }
}

/// Names shared by the generators.
pub(crate) struct Names {
    trait_ident: Ident,
    server: Ident,
    stub: Ident,
    forward: Ident,
    vis: Visibility,
    module: Option<LitStr>,
    name: LitStr,
    version: LitStr,
}

fn expand(args: ObjectArgs, item: &mut ItemTrait) -> TokenStream2 {
    let model = model::read(item);
    let trait_out = clean_trait(item);
    let iface = match model {
        Ok(iface) => iface,
        // Still emit the (cleaned) trait, so the only errors are ours.
        Err(e) => {
            let errors = e.to_compile_error();
            return quote! { #errors #trait_out };
        }
    };
    let ident = item.ident.clone();
    let span = ident.span();
    let names = Names {
        server: format_ident!("{}Server", ident),
        stub: format_ident!("{}Stub", ident),
        forward: format_ident!("{}Forward", ident),
        vis: item.vis.clone(),
        module: args.module,
        name: args
            .name
            .unwrap_or_else(|| LitStr::new(&ident.to_string().to_snake_case(), span)),
        version: args.version.unwrap_or_else(|| LitStr::new("1.0", span)),
        trait_ident: ident,
    };
    let server = server::generate(&names, &iface);
    let stub = stub::generate(&names, &iface);
    let forward = forward::generate(&names, &iface, item);
    quote! {
        #trait_out
        #server
        #stub
        #forward
    }
}
