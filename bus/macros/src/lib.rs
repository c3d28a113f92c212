//! Placeholder; the #[object] macro is being written.
use proc_macro::TokenStream;
/// Placeholder.
#[proc_macro_attribute]
pub fn object(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
