//! The same behaviour checks against every backend, plus SQLite durability.

mod crash;
mod suite;
