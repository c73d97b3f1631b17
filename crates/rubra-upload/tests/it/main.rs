//! Integration tests: the uploader against a real Rubra server in-process,
//! directly and through a fault-injecting proxy.

mod faults;
mod helpers;
mod proxy;
mod upload;
