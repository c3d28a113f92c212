//! Reads an interface trait into a checked model. Everything the macro cannot serve is a
//! span-targeted error here; nothing is skipped.

use crate::attr::take_method_args;
use heck::ToUpperCamelCase;
use quote::ToTokens;
use std::collections::HashMap;
use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, Ident, ItemTrait, Pat, PathArguments, ReturnType, Signature, TraitItem,
    TraitItemFn, Type,
};

/// One callable method.
pub struct Method {
    /// Rust name.
    pub ident: Ident,
    /// Wire name (PascalCase or the `#[bus(name)]` override).
    pub wire: String,
    /// The signature exactly as declared (after `#[bus]` removal), for the stub impl.
    pub sig: Signature,
    /// Arguments in order.
    pub args: Vec<Arg>,
    /// `T` of `Result<T, RemoteError>`.
    pub ok: Type,
    /// `#[bus(read)]`: callable by read-only callers.
    pub read: bool,
}

/// One argument of a method.
pub struct Arg {
    /// Its name in the declaration.
    pub ident: Ident,
    /// Its (owned) type.
    pub ty: Type,
}

/// One event source (`#[bus(stream)]`).
pub struct Stream {
    /// Rust name.
    pub ident: Ident,
    /// Event name on the wire.
    pub wire: String,
    /// The signature as declared.
    pub sig: Signature,
    /// `T` of `EventStream<T>`.
    pub item: Type,
}

/// A checked interface.
pub struct Interface {
    /// Callable methods in declaration order.
    pub methods: Vec<Method>,
    /// Event sources in declaration order.
    pub streams: Vec<Stream>,
}

/// Collects errors so that one expansion reports all of them.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// Adds an error covering `tokens`.
    pub fn spanned(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    /// The collected errors, if any.
    pub fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

/// Checks `item` and strips its `#[bus]` attributes. Returns the model, or every error found.
pub fn read(item: &mut ItemTrait) -> Result<Interface, syn::Error> {
    let mut errors = Errors::default();
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.spanned(&item.generics, "#[object] traits cannot be generic");
    }
    if let Some(unsafety) = &item.unsafety {
        errors.spanned(unsafety, "#[object] traits cannot be `unsafe`");
    }
    for marker in ["Send", "Sync"] {
        if !has_supertrait(item, marker) {
            errors.spanned(
                &item.ident,
                format!(
                    "#[object] traits must have `Send + Sync` supertraits (`trait {}: Send + Sync`): \
                     objects are shared between concurrent calls and served as `Arc<dyn {}>`",
                    item.ident, item.ident
                ),
            );
            break;
        }
    }
    let mut iface = Interface {
        methods: Vec::new(),
        streams: Vec::new(),
    };
    for entry in &mut item.items {
        match entry {
            TraitItem::Fn(f) => read_fn(f, &mut iface, &mut errors),
            other => errors.spanned(
                other,
                "#[object] traits may only contain methods (no associated consts, types or macros)",
            ),
        }
    }
    check_duplicates(&iface, &mut errors);
    match errors.finish() {
        Some(e) => Err(e),
        None => Ok(iface),
    }
}

fn read_fn(f: &mut TraitItemFn, iface: &mut Interface, errors: &mut Errors) {
    let args = match take_method_args(&mut f.attrs) {
        Ok(a) => a,
        Err(e) => {
            // Without knowing whether it is a stream, further checks would only add noise.
            errors.push(e);
            return;
        }
    };
    let sig = &f.sig;
    let wire = args.name.as_ref().map_or_else(
        || sig.ident.to_string().to_upper_camel_case(),
        |n| n.value(),
    );
    if let Some(body) = &f.default {
        errors.spanned(
            body,
            "#[object] methods cannot have a default body: the generated stub implements every \
             method over the bus, so a default would only ever run in-process",
        );
    }
    check_signature_shape(sig, errors);
    check_receiver(sig, errors);
    if let (Some(_), Some(span)) = (args.stream, args.read) {
        errors.push(syn::Error::new(
            span,
            "#[bus(read)] marks a callable method; an event source is not called",
        ));
    }
    if args.stream.is_some() {
        if let Some(a) = &sig.asyncness {
            errors.spanned(
                a,
                "#[bus(stream)] methods are plain `fn`s returning `EventStream<T>`, not `async fn`",
            );
        }
        if let Some(extra) = sig.inputs.iter().find(|a| matches!(a, FnArg::Typed(_))) {
            errors.spanned(
                extra,
                "#[bus(stream)] methods take no arguments besides `&self`",
            );
        }
        let item = stream_item(sig, errors);
        if let Some(item) = item {
            iface.streams.push(Stream {
                ident: sig.ident.clone(),
                wire,
                sig: sig.clone(),
                item,
            });
        }
        return;
    }
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "#[object] methods must be `async fn` (or event sources marked #[bus(stream)])",
        );
    }
    let mut out_args = Vec::new();
    for input in sig.inputs.iter() {
        let FnArg::Typed(pt) = input else { continue };
        let ident = match &*pt.pat {
            Pat::Ident(pi)
                if pi.by_ref.is_none() && pi.mutability.is_none() && pi.subpat.is_none() =>
            {
                if pi.ident.to_string().starts_with("__") {
                    errors.spanned(
                        &pi.ident,
                        "argument names starting with `__` are reserved for generated code",
                    );
                }
                Some(pi.ident.clone())
            }
            other => {
                errors.spanned(
                    other,
                    "#[object] method arguments must be plain identifiers, like `spec: Spec`",
                );
                None
            }
        };
        let owned = check_owned(&pt.ty, "argument", errors);
        if let (Some(ident), true) = (ident, owned) {
            out_args.push(Arg {
                ident,
                ty: (*pt.ty).clone(),
            });
        }
    }
    let ok = result_ok(sig, errors);
    if let Some(ok) = ok {
        iface.methods.push(Method {
            ident: sig.ident.clone(),
            wire,
            sig: sig.clone(),
            args: out_args,
            ok,
            read: args.read.is_some(),
        });
    }
}

/// Whether `item` lists `marker` (by its last path segment) among its supertraits.
fn has_supertrait(item: &ItemTrait, marker: &str) -> bool {
    item.supertraits.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == marker),
        _ => false,
    })
}

/// Rejects generics, `const`/`unsafe`/`extern` and variadics.
fn check_signature_shape(sig: &Signature, errors: &mut Errors) {
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "#[object] methods cannot be generic: every argument and result has one concrete wire type",
        );
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, "#[object] methods cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, "#[object] methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "#[object] methods cannot have an ABI");
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "#[object] methods cannot be variadic");
    }
}

/// The receiver must be exactly `&self`.
fn check_receiver(sig: &Signature, errors: &mut Errors) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            let plain_ref = matches!(&r.reference, Some((_, None)));
            if !plain_ref || r.mutability.is_some() || r.colon_token.is_some() {
                errors.spanned(
                    r,
                    "#[object] methods must take `&self` (objects are shared between concurrent calls)",
                );
            }
        }
        _ => errors.spanned(
            &sig.ident,
            "#[object] methods must take `&self`; an associated function cannot be called over the bus",
        ),
    }
}

/// `T` of `Result<T, RemoteError>`, or an error on the return type.
fn result_ok(sig: &Signature, errors: &mut Errors) -> Option<Type> {
    const MSG: &str = "#[object] methods must return `Result<T, RemoteError>`";
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            errors.spanned(sig, MSG);
            return None;
        }
    };
    let Some((ident, args)) = last_segment(ty) else {
        errors.spanned(ty, MSG);
        return None;
    };
    if ident != "Result" || args.len() != 2 {
        errors.spanned(ty, MSG);
        return None;
    }
    let (GenericArgument::Type(ok), GenericArgument::Type(err)) = (&args[0], &args[1]) else {
        errors.spanned(ty, MSG);
        return None;
    };
    match last_segment(err) {
        Some((e, a)) if e == "RemoteError" && a.is_empty() => {}
        _ => {
            errors.spanned(
                err,
                "the error type of an #[object] method must be `RemoteError`",
            );
            return None;
        }
    }
    check_owned(ok, "result", errors).then(|| ok.clone())
}

/// `T` of `EventStream<T>` (or `BoxStream<'static, T>`), or an error on the return type.
fn stream_item(sig: &Signature, errors: &mut Errors) -> Option<Type> {
    const MSG: &str = "#[bus(stream)] methods must return `EventStream<T>`";
    let ReturnType::Type(_, ty) = &sig.output else {
        errors.spanned(sig, MSG);
        return None;
    };
    let item = match last_segment(ty) {
        Some((id, args)) if id == "EventStream" && args.len() == 1 => args.into_iter().next(),
        Some((id, args)) if id == "BoxStream" && args.len() == 2 => {
            let mut it = args.into_iter();
            match it.next() {
                Some(GenericArgument::Lifetime(l)) if l.ident == "static" => it.next(),
                _ => None,
            }
        }
        _ => None,
    };
    match item {
        Some(GenericArgument::Type(t)) => check_owned(&t, "event", errors).then_some(t),
        _ => {
            errors.spanned(ty, MSG);
            None
        }
    }
}

/// The last path segment's name and generic arguments, for a plain path type.
fn last_segment(ty: &Type) -> Option<(Ident, Vec<GenericArgument>)> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let seg = tp.path.segments.last()?;
    let args = match &seg.arguments {
        PathArguments::None => Vec::new(),
        PathArguments::AngleBracketed(a) => a.args.iter().cloned().collect(),
        PathArguments::Parenthesized(_) => return None,
    };
    Some((seg.ident.clone(), args))
}

/// Whether `ty` is an owned, concrete type that can be decoded from the wire. Reports why not.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) -> bool {
    struct Owned<'a> {
        what: &'a str,
        errors: &'a mut Errors,
        ok: bool,
    }
    impl<'ast> Visit<'ast> for Owned<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.ok = false;
            self.errors.spanned(
                r,
                format!("{} types of #[object] methods must be owned (no references): values are decoded from the wire", self.what),
            );
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            self.ok = false;
            self.errors.spanned(
                l,
                format!("{} types of #[object] methods cannot borrow (no lifetimes): values are decoded from the wire", self.what),
            );
        }
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.ok = false;
            self.errors.spanned(
                t,
                format!(
                    "{} types of #[object] methods must be concrete, not `impl Trait`",
                    self.what
                ),
            );
        }
        fn visit_type_path(&mut self, p: &'ast syn::TypePath) {
            if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") {
                self.ok = false;
                self.errors.spanned(
                    p,
                    format!(
                        "{} types of #[object] methods cannot mention `Self`",
                        self.what
                    ),
                );
                return;
            }
            syn::visit::visit_type_path(self, p);
        }
    }
    let mut v = Owned {
        what,
        errors,
        ok: true,
    };
    v.visit_type(ty);
    v.ok
}

/// Wire names must be unique across methods and events of one object.
fn check_duplicates(iface: &Interface, errors: &mut Errors) {
    let mut seen: HashMap<&str, &Ident> = HashMap::new();
    let all = iface
        .methods
        .iter()
        .map(|m| (m.wire.as_str(), &m.ident))
        .chain(iface.streams.iter().map(|s| (s.wire.as_str(), &s.ident)));
    for (wire, ident) in all {
        if let Some(first) = seen.insert(wire, ident) {
            errors.spanned(
                ident,
                format!("duplicate wire name \"{wire}\" (also used by `{first}`); rename one with #[bus(name = \"..\")]"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn wire_names_are_pascal_case_unless_overridden() {
        let mut item: ItemTrait = parse_quote! {
            trait T: Send + Sync {
                async fn get(&self) -> Result<u8, RemoteError>;
                async fn list_all_things(&self, a: u8) -> Result<(), RemoteError>;
                #[bus(name = "FarmID")]
                async fn farm_id(&self) -> Result<u32, imagebus_bus::RemoteError>;
                #[doc = "kept"]
                #[bus(stream)]
                fn state_changes(&self) -> EventStream<u8>;
            }
        };
        let iface = read(&mut item).unwrap_or_else(|e| panic!("{e}"));
        let wires: Vec<_> = iface.methods.iter().map(|m| m.wire.as_str()).collect();
        assert_eq!(wires, ["Get", "ListAllThings", "FarmID"]);
        assert_eq!(iface.streams[0].wire, "StateChanges");
        assert_eq!(iface.methods[1].args.len(), 1);
        // #[bus] is stripped, other attributes stay.
        let TraitItem::Fn(f) = &item.items[3] else {
            panic!("not a fn")
        };
        assert_eq!(f.attrs.len(), 1);
        assert!(f.attrs[0].path().is_ident("doc"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut item: ItemTrait = parse_quote! {
            trait T: Send + std::marker::Sync {
                fn a(&self) -> Result<u8, RemoteError>;
                async fn b(self) -> Result<u8, RemoteError>;
                async fn c(&self) -> u8;
            }
        };
        let err = read(&mut item).err().map(|e| e.into_iter().count());
        assert_eq!(err, Some(3));
    }
}
