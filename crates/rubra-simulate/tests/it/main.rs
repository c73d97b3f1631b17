//! Integration tests: the change generator against `rubra_jsondiff::diff`, and the
//! simulator's HTTP API on a real port (ETag/304, pause/resume, down/up, the log).

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod generator;
mod helpers;
mod http;
