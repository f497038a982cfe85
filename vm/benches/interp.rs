//! Placeholder until the interpreter bench is written.
fn main() {}
