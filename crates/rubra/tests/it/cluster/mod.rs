//! The cluster under fire (issue #26): real `serve` and `worker` processes, each in its own
//! network namespace (`rubra_testkit::cluster`), on one PostgreSQL + S3 bucket (+ RabbitMQ),
//! with links cut, processes paused or killed, and the shared services failing.
//!
//! - `fencing`: a process cut off from PostgreSQL longer than its lease while holding a job,
//!   a delivery or a watch; another takes the work over; the cut one, healed, writes nothing.
//! - `recovery`: PostgreSQL restarted under load, S3 refusing for 30 s, RabbitMQ restarted.
//! - `sharing`: jobs, deliveries and watches asked of one process are taken by every process,
//!   and every process consumes the queue.
//! - `chaos`: the soak behind `bench/chaos/run.sh` (ignored here).
//!
//! They need root (namespaces) and skip without it, unless `RUBRA_TEST_REQUIRE_SERVICES=1`.

mod chaos;
mod fencing;
mod recovery;
mod scale;
mod sharing;
mod support;
