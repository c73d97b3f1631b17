//! The `rubra` binary end to end, one test binary: the command line and its admin commands,
//! the cluster under fire (`cluster`: processes in network namespaces, issue #26),
//! `kill -9` of real processes (events, jobs, watches, the message relay), TLS reload, the simulator and
//! `rubra slowlog`. Shared helpers (one `rubra()`, process starters) are in `helpers`.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod cli;
mod cluster;
mod events_kill;
mod helpers;
mod jobs_kill;
mod relay_kill;
mod simulate;
mod slowlog;
mod tls_reload;
mod watches_kill;
