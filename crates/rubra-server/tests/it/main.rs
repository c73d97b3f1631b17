//! Integration tests of the HTTP API: each test spawns the real application on port 0 with
//! its own data folder, and talks to it over HTTP.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod admission;
mod amqp;
mod audit;
mod auth;
mod connections;
mod dashboard;
mod debug;
mod egress;
mod errors;
mod hardening;
mod health;
mod helpers;
mod hostile;
mod idempotency;
mod images;
mod jobs;
mod keys;
mod limits;
mod messages;
mod notify;
mod openapi;
mod openapi_bodies;
mod quotas;
mod retention;
mod scale_out;
mod secrets;
mod stats;
mod uploads;
mod watches;
mod watermark;
