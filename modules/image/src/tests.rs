//! Unit tests: the layer applier (`tests/apply.rs`) and the engine against a packing
//! double (`tests/engine.rs`).

mod apply;
mod engine;
