//! The only code allowed to use `unsafe`: SIMD block classification with
//! run-time CPU feature dispatch, and memory-mapped windows of a file.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub(crate) mod classify;
#[cfg(unix)]
pub(crate) mod mapped;
