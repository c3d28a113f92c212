//! Parsing of the macro's own arguments: `#[object(module = .., name = .., version = ..)]`
//! on the trait and the `#[bus(..)]` helper attribute on its methods.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Lit, LitStr};

/// The arguments of `#[object(...)]`.
#[derive(Default)]
pub struct ObjectArgs {
    /// Default module of the generated stub; without it the stub only has `with_module`.
    pub module: Option<LitStr>,
    /// Object name on the wire; defaults to the trait name in snake_case.
    pub name: Option<LitStr>,
    /// Object version on the wire; defaults to `"1.0"` (Go zbus and rbus's default).
    pub version: Option<LitStr>,
}

impl ObjectArgs {
    /// Parses one `key = value` of the attribute (used with `syn::meta::parser`).
    pub fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let slot = if meta.path.is_ident("module") {
            &mut self.module
        } else if meta.path.is_ident("name") {
            &mut self.name
        } else if meta.path.is_ident("version") {
            &mut self.version
        } else {
            return Err(meta.error(
                "unknown #[object] argument; expected `module = \"..\"`, `name = \"..\"` or `version = \"..\"`",
            ));
        };
        if slot.is_some() {
            return Err(meta.error("duplicate #[object] argument"));
        }
        let value: Lit = meta.value()?.parse()?;
        let text = match &value {
            Lit::Str(s) => s.value(),
            // `version = 1` reads naturally; accept integers and take their literal text.
            Lit::Int(i) if meta.path.is_ident("version") => i.base10_digits().to_string(),
            other => {
                return Err(syn::Error::new_spanned(other, "expected a string literal"));
            }
        };
        check_wire_word(&text, value.span(), !meta.path.is_ident("version"))?;
        *slot = Some(LitStr::new(&text, value.span()));
        Ok(())
    }
}

/// Rejects names that would break the `<module>.<name>@<version>` queue and channel names.
fn check_wire_word(text: &str, span: Span, forbid_dot: bool) -> syn::Result<()> {
    if text.is_empty() {
        return Err(syn::Error::new(span, "must not be empty"));
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '@' || (forbid_dot && c == '.');
    if let Some(c) = text.chars().find(|c| bad(*c)) {
        return Err(syn::Error::new(
            span,
            format!("{c:?} is not allowed here (it is a separator in bus queue names)"),
        ));
    }
    Ok(())
}

/// What `#[bus(...)]` says about one method.
#[derive(Default)]
pub struct MethodArgs {
    /// `#[bus(stream)]`: an event source, not a callable method.
    pub stream: Option<Span>,
    /// `#[bus(name = "GoName")]`: the wire name.
    pub name: Option<LitStr>,
    /// `#[bus(read)]`: the method changes nothing, so read-only callers may call it.
    pub read: Option<Span>,
}

/// Removes every `#[bus(...)]` from `attrs` and parses them.
pub fn take_method_args(attrs: &mut Vec<Attribute>) -> syn::Result<MethodArgs> {
    let mut args = MethodArgs::default();
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("bus")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("stream") {
                if args.stream.is_some() {
                    return Err(meta.error("duplicate `stream`"));
                }
                args.stream = Some(meta.input.span());
                Ok(())
            } else if meta.path.is_ident("read") {
                if args.read.is_some() {
                    return Err(meta.error("duplicate `read`"));
                }
                args.read = Some(meta.input.span());
                Ok(())
            } else if meta.path.is_ident("name") {
                if args.name.is_some() {
                    return Err(meta.error("duplicate `name`"));
                }
                let name: LitStr = meta.value()?.parse()?;
                check_method_name(&name)?;
                args.name = Some(name);
                Ok(())
            } else {
                Err(meta
                    .error("unknown #[bus] argument; expected `stream`, `read` or `name = \"..\"`"))
            }
        });
        if let Err(e) = parsed {
            push(e);
        }
    }
    attrs.retain(|a| !a.path().is_ident("bus"));
    match errors {
        Some(e) => Err(e),
        None => Ok(args),
    }
}

/// Wire method and event names are Go identifiers (and event names end channel names).
fn check_method_name(name: &LitStr) -> syn::Result<()> {
    let text = name.value();
    let mut chars = text.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            name.span(),
            "a wire name must be an identifier, like \"FarmID\"",
        ))
    }
}

/// Whether `attr` is `#[async_trait]` under any path; `#[object]` applies it itself.
pub fn is_async_trait(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "async_trait")
}
