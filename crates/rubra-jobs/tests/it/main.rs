//! Integration tests of the job runner: local files, and S3 (moto) with
//! faults injected by a TCP proxy in front of it.

mod helpers;
mod local;
mod s3;
