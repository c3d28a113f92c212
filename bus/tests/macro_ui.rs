//! Compile-time checks of `#[object]`: every shape the macro cannot serve is a clear error
//! pointing at the offending code, and a full interface compiles without extra imports.

#[test]
fn object_macro_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
