//! Typed settings, loaded once at start-up and validated.
//!
//! Every setting can come from a flag, a `RUBRA_…` environment variable or `rubra.toml`, with
//! the same name (`--data-dir`, `RUBRA_DATA_DIR`, `data-dir = "…"`), in that order of
//! precedence. [`ConfigArgs`] is what clap and the TOML file fill in (everything optional);
//! [`Settings`] is the validated result the rest of the program uses.

use clap::Args;
use rubra_store::{BlobUrl, DatabaseUrl};
use rubra_telemetry::LogFormat;
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Events per second one client may record by default: the noisy-neighbour benchmark keeps
/// another client's p99 within 2× its idle p99 at this rate (BENCHMARKS.md, issue #18) —
/// the wait is for the flood's group in the single event writer, so the less of the writer
/// one client holds, the shorter the others wait. 691 million events a day per client.
const DEFAULT_EVENTS_PER_SEC: u32 = 8_000;

/// The default event burst: two of the largest batches at once.
const DEFAULT_EVENTS_BURST: u32 = 20_000;

/// Settings as given on the command line, in the environment or in `rubra.toml`.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigArgs {
    /// Configuration file [default: ./rubra.toml if it exists].
    #[arg(long, env = "RUBRA_CONFIG", value_name = "FILE", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "RUBRA_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key; both re-read on SIGHUP)
    /// [default: plain HTTP].
    #[arg(long, env = "RUBRA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "RUBRA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// The key file that seals stored secrets (webhook secrets, Viber tokens, watch headers):
    /// one `id:base64key` a line, the first seals, all open; every process sharing the
    /// database needs the same file [default: DATA_DIR/secret.key, made on first start].
    #[arg(
        long,
        env = "RUBRA_SECRET_KEY_FILE",
        value_name = "FILE",
        global = true
    )]
    pub secret_key_file: Option<PathBuf>,

    /// How long a rotated webhook secret keeps signing deliveries beside the new one, in
    /// seconds [default: 86400].
    #[arg(long, env = "RUBRA_WEBHOOK_SECRET_OVERLAP_SECS", value_name = "SECS")]
    pub webhook_secret_overlap_secs: Option<u32>,

    /// Folder for the embedded database, blobs and the admin key [default: ./rubra-data].
    #[arg(long, env = "RUBRA_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: SQLite in the data dir].
    #[arg(long, env = "RUBRA_DATABASE_URL", value_name = "URL", global = true)]
    pub database_url: Option<String>,

    /// Blob storage: a folder or s3://BUCKET/PREFIX [default: DATA_DIR/blobs].
    #[arg(long, env = "RUBRA_STORAGE", value_name = "URL", global = true)]
    pub storage: Option<String>,

    /// Endpoint of an S3-compatible server (credentials and region from the AWS_* variables).
    #[arg(long, env = "RUBRA_S3_ENDPOINT", value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,

    /// Log format: json or text [default: json unless stderr is a terminal].
    #[arg(long, env = "RUBRA_LOG_FORMAT", value_name = "FORMAT", value_parser = ["json", "text"], global = true)]
    pub log_format: Option<String>,

    /// Log filter, e.g. "info" or "rubra_server=debug,info"; beats `RUST_LOG`, which is
    /// used only when this is not set anywhere [default: info].
    #[arg(long, env = "RUBRA_LOG", value_name = "FILTER", global = true)]
    pub log_filter: Option<String>,

    /// Also log, at WARN, every span slower than this many milliseconds.
    #[arg(long, env = "RUBRA_SLOW_MS", value_name = "N", global = true)]
    pub slow_ms: Option<u64>,

    /// Folder that local CSV job sources are resolved in (and confined to) [default: none, so
    /// no local source is accepted]. It may not be `/` nor hold the data folder, the
    /// configuration file or the admin key.
    #[arg(long, env = "RUBRA_JOBS_LOCAL_ROOT", value_name = "DIR", global = true)]
    pub jobs_local_root: Option<PathBuf>,

    /// S3 buckets and prefixes that CSV jobs may read, comma separated: `bucket` (all of it)
    /// or `bucket/prefix/` [default: none].
    #[arg(
        long,
        env = "RUBRA_JOBS_S3_ALLOW",
        value_name = "BUCKET[/PREFIX],…",
        value_delimiter = ',',
        global = true
    )]
    pub jobs_s3_allow: Option<Vec<String>>,

    /// Refuse plain http:// webhook URLs, except for hosts listed exactly in --fetch-allow
    /// [default: false].
    #[arg(
        long,
        env = "RUBRA_WEBHOOK_HTTPS_ONLY",
        value_name = "BOOL",
        global = true
    )]
    pub webhook_https_only: Option<bool>,

    /// Hosts that overlay URLs and watches may fetch from, and internal hosts webhooks may
    /// reach, comma separated: `host`, `host:port` (that port only), `[v6]:port`, `*.domain` or
    /// `*` (wildcards reach public addresses only) [default: none].
    #[arg(
        long,
        env = "RUBRA_FETCH_ALLOW",
        value_name = "HOST,…",
        value_delimiter = ',',
        global = true
    )]
    pub fetch_allow: Option<Vec<String>>,

    /// Largest accepted request body in bytes [default: 26214400 = 25 MiB].
    #[arg(long, env = "RUBRA_MAX_BODY_BYTES", value_name = "N", global = true)]
    pub max_body_bytes: Option<u64>,

    /// Largest accepted image, width × height, checked before decoding [default: 50000000].
    #[arg(long, env = "RUBRA_MAX_PIXELS", value_name = "N", global = true)]
    pub max_pixels: Option<u64>,

    /// Time limit for a request to produce its response, in ms [default: 30000].
    #[arg(
        long,
        env = "RUBRA_REQUEST_TIMEOUT_MS",
        value_name = "MS",
        global = true
    )]
    pub request_timeout_ms: Option<u64>,

    /// Image decodes and composites (POST /red, /images, /watermark, overlay uploads) run at
    /// once [default: the number of cores].
    #[arg(long, env = "RUBRA_ADMISSION_SLOTS", value_name = "N", global = true)]
    pub admission_slots: Option<u32>,

    /// Image requests that may wait for a free slot; more are refused at once with 503
    /// overloaded [default: 8 × the cores, at least 16, so that one client's share (half by
    /// default) still runs 8 requests at once].
    #[arg(long, env = "RUBRA_ADMISSION_QUEUE", value_name = "N", global = true)]
    pub admission_queue: Option<u32>,

    /// Decoded pixels (width × height) of the image requests running and waiting, together;
    /// at least max-pixels [default: a quarter of the memory at 8 bytes per pixel].
    #[arg(
        long,
        env = "RUBRA_MAX_DECODE_PIXELS_IN_FLIGHT",
        value_name = "N",
        global = true
    )]
    pub max_decode_pixels_in_flight: Option<u64>,

    /// Percent of the admission places (slots + queue, at least one) and of the pixel budget
    /// one client (or the admin) may hold; 50 or less keeps room for another client's first
    /// request, 100 lets one client take the whole gate [default: 50].
    #[arg(
        long,
        env = "RUBRA_ADMISSION_CLIENT_SHARE",
        value_name = "PERCENT",
        global = true
    )]
    pub admission_client_share: Option<u8>,

    /// Time a connection has to send a request's headers, and an HTTP/1.1 connection to start
    /// its next request, in ms [default: 10000].
    #[arg(
        long,
        env = "RUBRA_HEADER_TIMEOUT_MS",
        value_name = "MS",
        global = true
    )]
    pub header_timeout_ms: Option<u64>,

    /// A connection on which nothing is read or written for this long is closed (after the
    /// request in flight, if any), in ms [default: 60000].
    #[arg(long, env = "RUBRA_IDLE_TIMEOUT_MS", value_name = "MS", global = true)]
    pub idle_timeout_ms: Option<u64>,

    /// Connections open at once; further ones wait in the listen backlog until one closes
    /// [default: 10000, or three quarters of the open-file limit when lower].
    #[arg(long, env = "RUBRA_MAX_CONNECTIONS", value_name = "N", global = true)]
    pub max_connections: Option<u32>,

    /// Connections one client address may have open at once; further ones are closed at
    /// accept [default: 256].
    #[arg(
        long,
        env = "RUBRA_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        global = true
    )]
    pub max_connections_per_ip: Option<u32>,

    /// Server-Sent Event streams one client (or the admin) may have open [default: 16].
    #[arg(
        long,
        env = "RUBRA_MAX_STREAMS_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_streams_per_client: Option<u32>,

    /// CSV jobs this process runs at once [default: 2].
    #[arg(long, env = "RUBRA_JOB_WORKERS", value_name = "N", global = true)]
    pub job_workers: Option<u32>,

    /// Jobs of one client that may run at once across all processes [default: 2].
    #[arg(long, env = "RUBRA_JOBS_PER_CLIENT", value_name = "N", global = true)]
    pub jobs_per_client: Option<u32>,

    /// Base URL of the Viber bot API [default: https://chatapi.viber.com].
    #[arg(long, env = "RUBRA_VIBER_BASE_URL", value_name = "URL", global = true)]
    pub viber_base_url: Option<String>,

    /// Delays between notification delivery attempts, in ms, comma separated
    /// [default: 1000,5000,30000,120000,600000,1800000,3600000,10800000,21600000,43200000].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_RETRY_MS",
        value_name = "MS,…",
        global = true
    )]
    pub notify_retry_ms: Option<String>,

    /// Consecutive failed deliveries after which a subscription is paused [default: 20].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_PAUSE_AFTER",
        value_name = "N",
        global = true
    )]
    pub notify_pause_after: Option<u32>,

    /// Time limit of one webhook or Viber call, in ms [default: 10000].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_TIMEOUT_MS",
        value_name = "MS",
        global = true
    )]
    pub notify_timeout_ms: Option<u64>,

    /// Deliveries of one subscription in flight at once, over every process: a slow endpoint
    /// holds at most this many delivery slots [default: 16].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_MAX_IN_FLIGHT_PER_SUBSCRIPTION",
        value_name = "N",
        global = true
    )]
    pub notify_max_in_flight_per_subscription: Option<u32>,

    /// The same for a relay subscription — one matching messages by `types` with a Viber
    /// channel, which carries every message of a bot to the operator's Viber API — still within
    /// the client's share [default: 128].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_MAX_IN_FLIGHT_PER_RELAY_SUBSCRIPTION",
        value_name = "N",
        global = true
    )]
    pub notify_max_in_flight_per_relay_subscription: Option<u32>,

    /// Percent of a process's delivery slots (128) one client's deliveries may hold, counted
    /// over every process; the rest stays free for the other clients [default: 50].
    #[arg(
        long,
        env = "RUBRA_NOTIFY_CLIENT_SHARE",
        value_name = "PERCENT",
        global = true
    )]
    pub notify_client_share: Option<u8>,

    /// Overlays one client may store [default: 100].
    #[arg(
        long,
        env = "RUBRA_MAX_OVERLAYS_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_overlays_per_client: Option<u32>,

    /// Bytes of all the overlays one client stores together [default: 268435456, 256 MiB].
    #[arg(
        long,
        env = "RUBRA_MAX_OVERLAY_BYTES_PER_CLIENT",
        value_name = "BYTES",
        global = true
    )]
    pub max_overlay_bytes_per_client: Option<u64>,

    /// Bytes of all the images one client stores together [default: unlimited].
    #[arg(
        long,
        env = "RUBRA_MAX_IMAGE_BYTES_PER_CLIENT",
        value_name = "BYTES",
        global = true
    )]
    pub max_image_bytes_per_client: Option<u64>,

    /// API keys one client may hold, expired ones included until revoked [default: 100].
    #[arg(
        long,
        env = "RUBRA_MAX_KEYS_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_keys_per_client: Option<u32>,

    /// Watches one client may have [default: 1000].
    #[arg(
        long,
        env = "RUBRA_MAX_WATCHES_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_watches_per_client: Option<u32>,

    /// Live subscriptions one client may have [default: 1000].
    #[arg(
        long,
        env = "RUBRA_MAX_SUBSCRIPTIONS_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_subscriptions_per_client: Option<u32>,

    /// Queued and running CSV jobs one client may have [default: 1000].
    #[arg(
        long,
        env = "RUBRA_MAX_JOBS_PER_CLIENT",
        value_name = "N",
        global = true
    )]
    pub max_jobs_per_client: Option<u32>,

    /// Watches this process polls at most; 0: it polls none [default: 10000].
    #[arg(long, env = "RUBRA_WATCH_CAPACITY", value_name = "N", global = true)]
    pub watch_capacity: Option<u32>,

    /// How long a process holds its watches without renewing (another process takes over a
    /// dead one's watches after this), in ms [default: 10000].
    #[arg(long, env = "RUBRA_WATCH_LEASE_MS", value_name = "MS", global = true)]
    pub watch_lease_ms: Option<u64>,

    /// Largest watched document, in bytes [default: 8388608].
    #[arg(
        long,
        env = "RUBRA_WATCH_MAX_BYTES",
        value_name = "BYTES",
        global = true
    )]
    pub watch_max_bytes: Option<u64>,

    /// Time limit of one poll of a watched source, in ms [default: 5000].
    #[arg(long, env = "RUBRA_WATCH_TIMEOUT_MS", value_name = "MS", global = true)]
    pub watch_timeout_ms: Option<u64>,

    /// Requests per second one client (or one admin key) may make to this process, unless an
    /// admin set the client's own with `PATCH /clients/{id}` [default: 2000].
    #[arg(long, env = "RUBRA_RATE_LIMIT_RPS", value_name = "N", global = true)]
    pub rate_limit_rps: Option<u32>,

    /// Requests one client may make at once above its rate (the token bucket's size)
    /// [default: 4000].
    #[arg(long, env = "RUBRA_RATE_LIMIT_BURST", value_name = "N", global = true)]
    pub rate_limit_burst: Option<u32>,

    /// Events per second one client (or the admins together) may record through
    /// `POST /events`, per process: what one client may take of the single event writer
    /// [default: 8000].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_EVENTS_PER_SEC",
        value_name = "N",
        global = true
    )]
    pub rate_limit_events_per_sec: Option<u32>,

    /// Events one client may record at once above that rate; at least 10000, the largest
    /// batch [default: 20000].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_EVENTS_BURST",
        value_name = "N",
        global = true
    )]
    pub rate_limit_events_burst: Option<u32>,

    /// Messages per second one client (or the admins together) may send through
    /// `POST /messages`, per process [default: 10000].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_MESSAGES_PER_SEC",
        value_name = "N",
        global = true
    )]
    pub rate_limit_messages_per_sec: Option<u32>,

    /// Messages one client may send at once above that rate; at least 1000, the largest
    /// batch [default: 20000].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_MESSAGES_BURST",
        value_name = "N",
        global = true
    )]
    pub rate_limit_messages_burst: Option<u32>,

    /// Request body bytes per second one client (or the admins together) may send, per
    /// process; past it the server reads its uploads more slowly (TCP back-pressure), so a
    /// flood of large uploads costs the others no CPU [default: 33554432, 32 MiB/s].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_UPLOAD_BYTES_PER_SEC",
        value_name = "BYTES",
        global = true
    )]
    pub rate_limit_upload_bytes_per_sec: Option<u32>,

    /// Request body bytes one client may send at full speed above that rate; at least 1 MiB
    /// [default: 67108864, 64 MiB].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_UPLOAD_BURST_BYTES",
        value_name = "BYTES",
        global = true
    )]
    pub rate_limit_upload_burst_bytes: Option<u32>,

    /// Requests per second one address may make without a valid key (no key, or an unknown
    /// one), per process [default: 20].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_ANONYMOUS_RPS",
        value_name = "N",
        global = true
    )]
    pub rate_limit_anonymous_rps: Option<u32>,

    /// Requests without a valid key one address may make at once above that rate
    /// [default: 100].
    #[arg(
        long,
        env = "RUBRA_RATE_LIMIT_ANONYMOUS_BURST",
        value_name = "N",
        global = true
    )]
    pub rate_limit_anonymous_burst: Option<u32>,

    /// Days the delivery log and finished notifications are kept; 0 keeps them forever
    /// [default: 30].
    #[arg(
        long,
        env = "RUBRA_RETAIN_DELIVERIES_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_deliveries_days: Option<u32>,

    /// Days the changes of watched documents are kept; 0 keeps them forever [default: 30].
    #[arg(
        long,
        env = "RUBRA_RETAIN_WATCH_CHANGES_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_watch_changes_days: Option<u32>,

    /// Days finished CSV jobs are kept; 0 keeps them forever [default: 30].
    #[arg(
        long,
        env = "RUBRA_RETAIN_JOBS_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_jobs_days: Option<u32>,

    /// Days audit log rows are kept; 0 keeps them forever [default: 400].
    #[arg(
        long,
        env = "RUBRA_RETAIN_AUDIT_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_audit_days: Option<u32>,

    /// Days events are kept: only 0 (forever) is accepted, since `GET /stats` counts from
    /// raw events [default: 0].
    #[arg(
        long,
        env = "RUBRA_RETAIN_EVENTS_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_events_days: Option<u32>,

    /// Days the ids of messages are kept: a message repeating an id within them is a
    /// duplicate; 0 keeps them forever [default: 7].
    #[arg(
        long,
        env = "RUBRA_RETAIN_MESSAGES_DAYS",
        value_name = "DAYS",
        global = true
    )]
    pub retain_messages_days: Option<u32>,

    /// RabbitMQ to consume messages from (`amqp://user:pass@host:port/vhost`); with
    /// `--amqp-queue`, every `serve` and `worker` process consumes that queue.
    #[arg(long, env = "RUBRA_AMQP_URL", value_name = "URL", global = true)]
    pub amqp_url: Option<String>,

    /// The RabbitMQ queue of messages (declared durable if it does not exist).
    #[arg(long, env = "RUBRA_AMQP_QUEUE", value_name = "NAME", global = true)]
    pub amqp_queue: Option<String>,

    /// Unacknowledged messages RabbitMQ hands one process at once [default: 256].
    #[arg(long, env = "RUBRA_AMQP_PREFETCH", value_name = "N", global = true)]
    pub amqp_prefetch: Option<u16>,
}

/// A setting that could not be used, named so that the user can find it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has unknown keys.
    #[error("invalid configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// One setting has a bad value.
    #[error("invalid value for `{key}` (--{key} / RUBRA_{env} / {key} in rubra.toml): {message}")]
    Invalid {
        /// The setting's name, as a flag without the dashes.
        key: &'static str,
        /// The same name as an environment variable suffix.
        env: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl std::fmt::Display) -> SettingsError {
    SettingsError::Invalid {
        key,
        env: key.replace('-', "_").to_uppercase(),
        message: message.to_string(),
    }
}

/// The validated settings of one process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// HTTPS certificate and key files (`None`: plain HTTP).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The data folder (SQLite database, local blobs, admin key).
    pub data_dir: PathBuf,
    /// The key file that seals stored secrets.
    pub secret_key: crate::secret_key::SecretKeyFile,
    /// How long a rotated webhook secret keeps signing beside the new one.
    pub webhook_secret_overlap: Duration,
    /// The database.
    pub database: DatabaseUrl,
    /// The blob storage.
    pub storage: BlobUrl,
    /// Endpoint of an S3-compatible server, if not AWS itself.
    pub s3_endpoint: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_filter: String,
    /// Slow-span threshold.
    pub slow_ms: Option<u64>,
    /// Root that local CSV job paths are confined to, open as a capability (None: no local
    /// sources). Never `/` nor a folder holding the data folder, the configuration file, the
    /// admin key, the SQLite database or the local blob folder, nor one inside the data folder.
    pub jobs_local_root: Option<rubra_jobs::LocalRoot>,
    /// S3 buckets and prefixes that CSV jobs may read (`bucket` or `bucket/prefix/`; empty:
    /// no S3 source).
    pub jobs_s3_allow: rubra_jobs::S3Allow,
    /// Whether webhooks must use https:// (except hosts listed exactly in `fetch_allow`).
    pub webhook_https_only: bool,
    /// Hosts that may be fetched from.
    pub fetch_allow: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest accepted image in pixels.
    pub max_pixels: u64,
    /// Time limit for producing a response.
    pub request_timeout: Duration,
    /// Image decodes and composites running at once.
    pub admission_slots: usize,
    /// Image requests that may wait for a slot.
    pub admission_queue: usize,
    /// Decoded pixels of running and waiting image requests together (≥ `max_pixels`).
    pub max_decode_pixels_in_flight: u64,
    /// Percent (1–100) of the admission places and pixel budget one client may hold.
    pub admission_client_share: u8,
    /// Time to send a request's headers (and, on HTTP/1.1, to start the next request).
    pub header_timeout: Duration,
    /// A connection silent in both directions this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// SSE streams open per client.
    pub max_streams_per_client: usize,
    /// CSV jobs this process runs at once (0: this process runs none).
    pub job_workers: u32,
    /// Jobs of one client running at once, across all processes.
    pub jobs_per_client: u32,
    /// Base URL of the Viber bot API (tests point it at a local fake).
    pub viber_base_url: String,
    /// Delays between notification delivery attempts.
    pub notify_retry: rubra_notify::RetrySchedule,
    /// Consecutive failed deliveries that pause a subscription.
    pub notify_pause_after: u32,
    /// Time limit of one delivery call.
    pub notify_timeout: Duration,
    /// Deliveries of one subscription in flight at once.
    pub notify_max_in_flight_per_subscription: u32,
    /// Deliveries of one relay subscription (message `types`, Viber channel) in flight at once.
    pub notify_max_in_flight_per_relay_subscription: u32,
    /// Percent (1–100) of the delivery slots one client may hold.
    pub notify_client_share: u8,
    /// API keys one client may hold.
    pub max_keys_per_client: u32,
    /// Watches one client may have.
    pub max_watches_per_client: u32,
    /// Overlays one client may store.
    pub max_overlays_per_client: u32,
    /// Bytes of one client's overlays together.
    pub max_overlay_bytes_per_client: u64,
    /// Bytes of one client's images together (`None`: unlimited).
    pub max_image_bytes_per_client: Option<u64>,
    /// Live subscriptions one client may have.
    pub max_subscriptions_per_client: u32,
    /// Queued and running CSV jobs one client may have.
    pub max_jobs_per_client: u32,
    /// Watches this process polls at most (0: none).
    pub watch_capacity: u32,
    /// How long a process holds its watches without renewing.
    pub watch_lease: Duration,
    /// Largest watched document.
    pub watch_max_bytes: usize,
    /// Time limit of one poll.
    pub watch_timeout: Duration,
    /// Requests per second of a client without its own limit, per process.
    pub rate_limit_rps: NonZeroU32,
    /// Token bucket size of a client without its own limit.
    pub rate_limit_burst: NonZeroU32,
    /// Events per second one client may record through `POST /events`, per process.
    pub rate_limit_events_per_sec: NonZeroU32,
    /// Events one client may record at once above that rate.
    pub rate_limit_events_burst: NonZeroU32,
    /// Messages per second per client through `POST /messages`.
    pub rate_limit_messages_per_sec: NonZeroU32,
    /// Messages one client may send at once above that rate.
    pub rate_limit_messages_burst: NonZeroU32,
    /// Request body bytes per second per client, past which its uploads are read slowly.
    pub rate_limit_upload_bytes_per_sec: NonZeroU32,
    /// Request body bytes one client may send at full speed above that rate.
    pub rate_limit_upload_burst_bytes: NonZeroU32,
    /// Requests per second without a valid key, per client address and process.
    pub rate_limit_anonymous_rps: NonZeroU32,
    /// Token bucket size of requests without a valid key, per client address.
    pub rate_limit_anonymous_burst: NonZeroU32,
    /// How long the delivery log and finished notifications are kept (`None`: forever).
    pub retain_deliveries: Option<Duration>,
    /// How long watch changes are kept (`None`: forever).
    pub retain_watch_changes: Option<Duration>,
    /// How long finished jobs are kept (`None`: forever).
    pub retain_jobs: Option<Duration>,
    /// How long audit log rows are kept (`None`: forever).
    pub retain_audit: Option<Duration>,
    /// How long message ids are kept for finding duplicates (`None`: forever).
    pub retain_messages: Option<Duration>,
    /// The RabbitMQ queue to consume messages from, if any.
    pub amqp: Option<AmqpSource>,
}

/// A RabbitMQ queue of messages (`--amqp-url`, `--amqp-queue`, `--amqp-prefetch`).
#[derive(Clone)]
pub struct AmqpSource {
    /// The broker's `amqp://` URL (its password stays out of `Debug`).
    pub url: String,
    /// The queue.
    pub queue: String,
    /// Unacknowledged deliveries at once (the consumer's QoS).
    pub prefetch: u16,
}

impl std::fmt::Debug for AmqpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSource")
            .field("url", &redact_password(&self.url))
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

/// `url` with any password replaced by `***`, for logs.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Validates the three `amqp-*` settings: a URL and a queue together, or neither.
fn amqp_source(
    url: Option<String>,
    queue: Option<String>,
    prefetch: Option<u16>,
) -> Result<Option<AmqpSource>, SettingsError> {
    let (url, queue) = match (url, queue) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(invalid("amqp-queue", "is required with amqp-url")),
        (None, Some(_)) => return Err(invalid("amqp-url", "is required with amqp-queue")),
        (Some(u), Some(q)) => (u, q),
    };
    let parsed =
        url::Url::parse(&url).map_err(|e| invalid("amqp-url", format!("not a URL: {e}")))?;
    if parsed.scheme() != "amqp" || parsed.host().is_none() {
        return Err(invalid(
            "amqp-url",
            format!(
                "{} is not an amqp://host URL (amqps is not supported)",
                redact_password(&url)
            ),
        ));
    }
    if queue.is_empty() || queue.len() > 255 {
        return Err(invalid("amqp-queue", "must be 1 to 255 bytes"));
    }
    let prefetch = prefetch.unwrap_or(256);
    if prefetch == 0 {
        return Err(invalid("amqp-prefetch", "must be greater than 0"));
    }
    Ok(Some(AmqpSource {
        url,
        queue,
        prefetch,
    }))
}

impl ConfigArgs {
    /// Fills every setting not given on the command line or in the environment from `other`
    /// (the configuration file).
    fn or(self, other: ConfigArgs) -> ConfigArgs {
        ConfigArgs {
            config: self.config,
            listen: self.listen.or(other.listen),
            tls_cert: self.tls_cert.or(other.tls_cert),
            tls_key: self.tls_key.or(other.tls_key),
            secret_key_file: self.secret_key_file.or(other.secret_key_file),
            webhook_secret_overlap_secs: self
                .webhook_secret_overlap_secs
                .or(other.webhook_secret_overlap_secs),
            data_dir: self.data_dir.or(other.data_dir),
            database_url: self.database_url.or(other.database_url),
            storage: self.storage.or(other.storage),
            s3_endpoint: self.s3_endpoint.or(other.s3_endpoint),
            log_format: self.log_format.or(other.log_format),
            log_filter: self.log_filter.or(other.log_filter),
            slow_ms: self.slow_ms.or(other.slow_ms),
            jobs_local_root: self.jobs_local_root.or(other.jobs_local_root),
            jobs_s3_allow: self.jobs_s3_allow.or(other.jobs_s3_allow),
            webhook_https_only: self.webhook_https_only.or(other.webhook_https_only),
            fetch_allow: self.fetch_allow.or(other.fetch_allow),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            max_pixels: self.max_pixels.or(other.max_pixels),
            request_timeout_ms: self.request_timeout_ms.or(other.request_timeout_ms),
            admission_slots: self.admission_slots.or(other.admission_slots),
            admission_queue: self.admission_queue.or(other.admission_queue),
            max_decode_pixels_in_flight: self
                .max_decode_pixels_in_flight
                .or(other.max_decode_pixels_in_flight),
            admission_client_share: self.admission_client_share.or(other.admission_client_share),
            header_timeout_ms: self.header_timeout_ms.or(other.header_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(other.idle_timeout_ms),
            max_connections: self.max_connections.or(other.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(other.max_connections_per_ip),
            max_streams_per_client: self.max_streams_per_client.or(other.max_streams_per_client),
            job_workers: self.job_workers.or(other.job_workers),
            jobs_per_client: self.jobs_per_client.or(other.jobs_per_client),
            viber_base_url: self.viber_base_url.or(other.viber_base_url),
            notify_retry_ms: self.notify_retry_ms.or(other.notify_retry_ms),
            notify_pause_after: self.notify_pause_after.or(other.notify_pause_after),
            notify_timeout_ms: self.notify_timeout_ms.or(other.notify_timeout_ms),
            notify_max_in_flight_per_subscription: self
                .notify_max_in_flight_per_subscription
                .or(other.notify_max_in_flight_per_subscription),
            notify_max_in_flight_per_relay_subscription: self
                .notify_max_in_flight_per_relay_subscription
                .or(other.notify_max_in_flight_per_relay_subscription),
            notify_client_share: self.notify_client_share.or(other.notify_client_share),
            max_keys_per_client: self.max_keys_per_client.or(other.max_keys_per_client),
            max_watches_per_client: self.max_watches_per_client.or(other.max_watches_per_client),
            max_overlays_per_client: self
                .max_overlays_per_client
                .or(other.max_overlays_per_client),
            max_overlay_bytes_per_client: self
                .max_overlay_bytes_per_client
                .or(other.max_overlay_bytes_per_client),
            max_image_bytes_per_client: self
                .max_image_bytes_per_client
                .or(other.max_image_bytes_per_client),
            max_subscriptions_per_client: self
                .max_subscriptions_per_client
                .or(other.max_subscriptions_per_client),
            max_jobs_per_client: self.max_jobs_per_client.or(other.max_jobs_per_client),
            watch_capacity: self.watch_capacity.or(other.watch_capacity),
            watch_lease_ms: self.watch_lease_ms.or(other.watch_lease_ms),
            watch_max_bytes: self.watch_max_bytes.or(other.watch_max_bytes),
            watch_timeout_ms: self.watch_timeout_ms.or(other.watch_timeout_ms),
            rate_limit_rps: self.rate_limit_rps.or(other.rate_limit_rps),
            rate_limit_burst: self.rate_limit_burst.or(other.rate_limit_burst),
            rate_limit_events_per_sec: self
                .rate_limit_events_per_sec
                .or(other.rate_limit_events_per_sec),
            rate_limit_events_burst: self
                .rate_limit_events_burst
                .or(other.rate_limit_events_burst),
            rate_limit_messages_per_sec: self
                .rate_limit_messages_per_sec
                .or(other.rate_limit_messages_per_sec),
            rate_limit_messages_burst: self
                .rate_limit_messages_burst
                .or(other.rate_limit_messages_burst),
            rate_limit_upload_bytes_per_sec: self
                .rate_limit_upload_bytes_per_sec
                .or(other.rate_limit_upload_bytes_per_sec),
            rate_limit_upload_burst_bytes: self
                .rate_limit_upload_burst_bytes
                .or(other.rate_limit_upload_burst_bytes),
            rate_limit_anonymous_rps: self
                .rate_limit_anonymous_rps
                .or(other.rate_limit_anonymous_rps),
            rate_limit_anonymous_burst: self
                .rate_limit_anonymous_burst
                .or(other.rate_limit_anonymous_burst),
            retain_deliveries_days: self.retain_deliveries_days.or(other.retain_deliveries_days),
            retain_watch_changes_days: self
                .retain_watch_changes_days
                .or(other.retain_watch_changes_days),
            retain_jobs_days: self.retain_jobs_days.or(other.retain_jobs_days),
            retain_audit_days: self.retain_audit_days.or(other.retain_audit_days),
            retain_events_days: self.retain_events_days.or(other.retain_events_days),
            retain_messages_days: self.retain_messages_days.or(other.retain_messages_days),
            amqp_url: self.amqp_url.or(other.amqp_url),
            amqp_queue: self.amqp_queue.or(other.amqp_queue),
            amqp_prefetch: self.amqp_prefetch.or(other.amqp_prefetch),
        }
    }
}

impl Settings {
    /// Merges flags/environment with the configuration file and validates the result.
    pub fn load(args: ConfigArgs) -> Result<Settings, SettingsError> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None => {
                let default = Path::new("rubra.toml");
                default.exists().then(|| read_file(default)).transpose()?
            }
        };
        Settings::validate(match file {
            Some(file) => args.or(file),
            None => args,
        })
    }

    /// Validates merged arguments, applying defaults.
    pub fn validate(a: ConfigArgs) -> Result<Settings, SettingsError> {
        let listen = match a.listen.as_deref() {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(s) => s
                .parse()
                .map_err(|e| invalid("listen", format!("{s:?}: {e}")))?,
        };
        let tls = match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls-key", "--tls-cert needs --tls-key too")),
            (None, Some(_)) => return Err(invalid("tls-cert", "--tls-key needs --tls-cert too")),
        };
        let data_dir = a.data_dir.unwrap_or_else(|| PathBuf::from("rubra-data"));
        let database = match a.database_url.as_deref() {
            None => DatabaseUrl::default_in(&data_dir),
            Some(s) => DatabaseUrl::parse(s).map_err(|e| invalid("database-url", e))?,
        };
        let secret_key = match &a.secret_key_file {
            Some(path) => crate::secret_key::SecretKeyFile {
                path: path.clone(),
                create_if_missing: false,
            },
            None => crate::secret_key::SecretKeyFile {
                path: data_dir.join(crate::secret_key::DEFAULT_NAME),
                create_if_missing: true,
            },
        };
        let webhook_secret_overlap =
            Duration::from_secs(u64::from(a.webhook_secret_overlap_secs.unwrap_or(86_400)));
        let storage = match a.storage.as_deref() {
            None => BlobUrl::Local(data_dir.join("blobs")),
            Some(s) => BlobUrl::parse(s).map_err(|e| invalid("storage", e))?,
        };
        if let Some(ep) = &a.s3_endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return Err(invalid(
                "s3-endpoint",
                format!("{ep:?} is not an http(s) URL"),
            ));
        }
        let log_format = match a.log_format.as_deref() {
            None => LogFormat::default_for_terminal(),
            Some(s) => LogFormat::from_str(s).map_err(|e| invalid("log-format", e))?,
        };
        let max_body_bytes = a.max_body_bytes.unwrap_or(25 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(invalid("max-body-bytes", "must be greater than 0"));
        }
        let max_pixels = a.max_pixels.unwrap_or(50_000_000);
        if max_pixels == 0 {
            return Err(invalid("max-pixels", "must be greater than 0"));
        }
        let timeout_ms = a.request_timeout_ms.unwrap_or(30_000);
        if timeout_ms == 0 {
            return Err(invalid("request-timeout-ms", "must be greater than 0"));
        }
        let cores = crate::admission::cores();
        let admission_slots = a.admission_slots.map_or(cores, |n| n as usize);
        if admission_slots == 0 {
            return Err(invalid("admission-slots", "must be greater than 0"));
        }
        let admission_queue = a
            .admission_queue
            .map_or_else(|| default_admission_queue(cores), |n| n as usize);
        let max_decode_pixels_in_flight = match a.max_decode_pixels_in_flight {
            None => crate::admission::default_pixel_budget(max_pixels),
            Some(n) if n < max_pixels => {
                return Err(invalid(
                    "max-decode-pixels-in-flight",
                    format!("must be at least max-pixels ({max_pixels}), or no image fits"),
                ));
            }
            Some(n) => n,
        };
        let admission_client_share = a.admission_client_share.unwrap_or(50);
        if !(1..=100).contains(&admission_client_share) {
            return Err(invalid(
                "admission-client-share",
                "must be 1 to 100 (percent)",
            ));
        }
        let header_timeout_ms = a.header_timeout_ms.unwrap_or(10_000);
        if header_timeout_ms == 0 {
            return Err(invalid("header-timeout-ms", "must be greater than 0"));
        }
        let idle_timeout_ms = a.idle_timeout_ms.unwrap_or(60_000);
        if idle_timeout_ms == 0 {
            return Err(invalid("idle-timeout-ms", "must be greater than 0"));
        }
        let max_connections = a
            .max_connections
            .map_or_else(crate::serve::default_max_connections, |n| n as usize);
        if max_connections == 0 {
            return Err(invalid("max-connections", "must be greater than 0"));
        }
        let max_connections_per_ip = a.max_connections_per_ip.unwrap_or(256) as usize;
        if max_connections_per_ip == 0 {
            return Err(invalid("max-connections-per-ip", "must be greater than 0"));
        }
        let max_streams_per_client = a.max_streams_per_client.unwrap_or(16) as usize;
        if max_streams_per_client == 0 {
            return Err(invalid("max-streams-per-client", "must be greater than 0"));
        }
        let fetch_allow = a.fetch_allow.unwrap_or_default();
        // host, host:port, [v6]:port, *.domain[:port] or *; a bad port names the entry.
        rubra_fetch::AllowList::parse(&fetch_allow).map_err(|e| invalid("fetch-allow", e))?;
        let jobs_s3_allow = rubra_jobs::S3Allow::parse(a.jobs_s3_allow.as_deref().unwrap_or(&[]))
            .map_err(|e| invalid("jobs-s3-allow", e))?;
        let jobs_local_root = match &a.jobs_local_root {
            None => None,
            Some(root) => {
                let config = match &a.config {
                    Some(path) => Some(path.clone()),
                    None => Some(PathBuf::from("rubra.toml")).filter(|p| p.exists()),
                };
                let mut guarded = vec![
                    ("data folder", data_dir.clone()),
                    ("admin key", data_dir.join("admin.key")),
                    ("secret key file", secret_key.path.clone()),
                ];
                guarded.extend(config.map(|c| ("configuration file", c)));
                if let DatabaseUrl::Sqlite(url) = &database {
                    guarded.extend(sqlite_file(url).map(|f| ("SQLite database", f)));
                }
                if let BlobUrl::Local(blobs) = &storage {
                    guarded.push(("blob folder", blobs.clone()));
                }
                Some(jobs_local_root(root, &data_dir, &guarded)?)
            }
        };
        let jobs_per_client = a.jobs_per_client.unwrap_or(2);
        if jobs_per_client == 0 {
            return Err(invalid("jobs-per-client", "must be greater than 0"));
        }
        let viber_base_url = a
            .viber_base_url
            .unwrap_or_else(|| "https://chatapi.viber.com".to_owned());
        if !(viber_base_url.starts_with("http://") || viber_base_url.starts_with("https://")) {
            return Err(invalid(
                "viber-base-url",
                format!("{viber_base_url:?} is not an http(s) URL"),
            ));
        }
        let notify_retry = match a.notify_retry_ms.as_deref() {
            None => rubra_notify::RetrySchedule::default(),
            Some(s) => rubra_notify::RetrySchedule::parse_ms(s)
                .map_err(|e| invalid("notify-retry-ms", e))?,
        };
        let notify_pause_after = a.notify_pause_after.unwrap_or(20);
        if notify_pause_after == 0 {
            return Err(invalid("notify-pause-after", "must be greater than 0"));
        }
        let notify_timeout_ms = a.notify_timeout_ms.unwrap_or(10_000);
        if notify_timeout_ms == 0 {
            return Err(invalid("notify-timeout-ms", "must be greater than 0"));
        }
        let notify_max_in_flight_per_subscription =
            a.notify_max_in_flight_per_subscription.unwrap_or(16);
        if notify_max_in_flight_per_subscription == 0 {
            return Err(invalid(
                "notify-max-in-flight-per-subscription",
                "must be greater than 0",
            ));
        }
        // Issue #22: one relay subscription carries every message of a bot, so the ordinary
        // cap (a few slots, issue #18) would be the relay's ceiling — 16 in flight held it to
        // ~2 400 messages/s. Its endpoint is the operator's Viber API, not a URL a client
        // chose, and the client's share (`notify-client-share`) still bounds it.
        let notify_max_in_flight_per_relay_subscription =
            a.notify_max_in_flight_per_relay_subscription.unwrap_or(128);
        if notify_max_in_flight_per_relay_subscription == 0 {
            return Err(invalid(
                "notify-max-in-flight-per-relay-subscription",
                "must be greater than 0",
            ));
        }
        let notify_client_share = a.notify_client_share.unwrap_or(50);
        if !(1..=100).contains(&notify_client_share) {
            return Err(invalid("notify-client-share", "must be 1 to 100 (percent)"));
        }
        let max_keys_per_client = a.max_keys_per_client.unwrap_or(100);
        if max_keys_per_client == 0 {
            return Err(invalid(
                "max-keys-per-client",
                "must be at least 1 (a client needs a key)",
            ));
        }
        let max_watches_per_client = a.max_watches_per_client.unwrap_or(1000);
        let max_subscriptions_per_client = a.max_subscriptions_per_client.unwrap_or(1000);
        let max_jobs_per_client = a.max_jobs_per_client.unwrap_or(1000);
        let watch_lease_ms = a.watch_lease_ms.unwrap_or(10_000);
        if watch_lease_ms < 500 {
            return Err(invalid("watch-lease-ms", "must be at least 500"));
        }
        let watch_max_bytes = a.watch_max_bytes.unwrap_or(8 << 20);
        if watch_max_bytes == 0 {
            return Err(invalid("watch-max-bytes", "must be greater than 0"));
        }
        let watch_timeout_ms = a.watch_timeout_ms.unwrap_or(5_000);
        if watch_timeout_ms == 0 {
            return Err(invalid("watch-timeout-ms", "must be greater than 0"));
        }
        let rate_limit_rps = NonZeroU32::new(a.rate_limit_rps.unwrap_or(2000))
            .ok_or_else(|| invalid("rate-limit-rps", "must be greater than 0"))?;
        let rate_limit_burst = NonZeroU32::new(a.rate_limit_burst.unwrap_or(4000))
            .ok_or_else(|| invalid("rate-limit-burst", "must be greater than 0"))?;
        let rate_limit_messages_per_sec =
            NonZeroU32::new(a.rate_limit_messages_per_sec.unwrap_or(10_000))
                .ok_or_else(|| invalid("rate-limit-messages-per-sec", "must be greater than 0"))?;
        let rate_limit_messages_burst =
            NonZeroU32::new(a.rate_limit_messages_burst.unwrap_or(20_000))
                .filter(|b| b.get() as usize >= crate::routes::messages::MAX_BATCH)
                .ok_or_else(|| {
                    invalid(
                        "rate-limit-messages-burst",
                        format!(
                            "must be at least {}, the largest batch",
                            crate::routes::messages::MAX_BATCH
                        ),
                    )
                })?;
        let rate_limit_upload_bytes_per_sec = NonZeroU32::new(
            a.rate_limit_upload_bytes_per_sec.unwrap_or(32 << 20),
        )
        .ok_or_else(|| invalid("rate-limit-upload-bytes-per-sec", "must be greater than 0"))?;
        let rate_limit_upload_burst_bytes =
            NonZeroU32::new(a.rate_limit_upload_burst_bytes.unwrap_or(64 << 20))
                .filter(|b| b.get() >= crate::throttle::MAX_FRAME_BYTES)
                .ok_or_else(|| {
                    invalid(
                        "rate-limit-upload-burst-bytes",
                        format!("must be at least {}", crate::throttle::MAX_FRAME_BYTES),
                    )
                })?;
        let rate_limit_events_per_sec = NonZeroU32::new(
            a.rate_limit_events_per_sec
                .unwrap_or(DEFAULT_EVENTS_PER_SEC),
        )
        .ok_or_else(|| invalid("rate-limit-events-per-sec", "must be greater than 0"))?;
        let rate_limit_events_burst = a.rate_limit_events_burst.unwrap_or(DEFAULT_EVENTS_BURST);
        let rate_limit_events_burst = NonZeroU32::new(rate_limit_events_burst)
            .filter(|b| b.get() as usize >= crate::routes::events::MAX_BATCH)
            .ok_or_else(|| {
                invalid(
                    "rate-limit-events-burst",
                    format!(
                        "must be at least {}, the largest batch",
                        crate::routes::events::MAX_BATCH
                    ),
                )
            })?;
        let rate_limit_anonymous_rps = NonZeroU32::new(a.rate_limit_anonymous_rps.unwrap_or(20))
            .ok_or_else(|| invalid("rate-limit-anonymous-rps", "must be greater than 0"))?;
        let rate_limit_anonymous_burst =
            NonZeroU32::new(a.rate_limit_anonymous_burst.unwrap_or(100))
                .ok_or_else(|| invalid("rate-limit-anonymous-burst", "must be greater than 0"))?;
        if a.retain_events_days.is_some_and(|d| d != 0) {
            return Err(invalid(
                "retain-events-days",
                "events are kept forever (0): GET /stats counts the edges of a range and \
                 thresholds of more than four decimals from raw events",
            ));
        }
        Ok(Settings {
            listen,
            tls,
            data_dir,
            secret_key,
            webhook_secret_overlap,
            database,
            storage,
            s3_endpoint: a.s3_endpoint,
            log_format,
            log_filter: log_filter(a.log_filter, std::env::var("RUST_LOG").ok()),
            slow_ms: a.slow_ms,
            jobs_local_root,
            jobs_s3_allow,
            webhook_https_only: a.webhook_https_only.unwrap_or(false),
            fetch_allow,
            max_body_bytes: usize::try_from(max_body_bytes)
                .map_err(|_| invalid("max-body-bytes", "too large for this machine"))?,
            max_pixels,
            request_timeout: Duration::from_millis(timeout_ms),
            admission_slots,
            admission_queue,
            max_decode_pixels_in_flight,
            admission_client_share,
            header_timeout: Duration::from_millis(header_timeout_ms),
            idle_timeout: Duration::from_millis(idle_timeout_ms),
            max_connections,
            max_connections_per_ip,
            max_streams_per_client,
            job_workers: a.job_workers.unwrap_or(2),
            jobs_per_client,
            viber_base_url: viber_base_url.trim_end_matches('/').to_owned(),
            notify_retry,
            notify_pause_after,
            notify_timeout: Duration::from_millis(notify_timeout_ms),
            notify_max_in_flight_per_subscription,
            notify_max_in_flight_per_relay_subscription,
            notify_client_share,
            max_keys_per_client,
            max_watches_per_client,
            max_overlays_per_client: a.max_overlays_per_client.unwrap_or(100),
            max_overlay_bytes_per_client: a.max_overlay_bytes_per_client.unwrap_or(256 << 20),
            max_image_bytes_per_client: a.max_image_bytes_per_client,
            max_subscriptions_per_client,
            max_jobs_per_client,
            watch_capacity: a.watch_capacity.unwrap_or(10_000),
            watch_lease: Duration::from_millis(watch_lease_ms),
            watch_max_bytes: usize::try_from(watch_max_bytes)
                .map_err(|_| invalid("watch-max-bytes", "too large for this machine"))?,
            watch_timeout: Duration::from_millis(watch_timeout_ms),
            rate_limit_rps,
            rate_limit_burst,
            rate_limit_events_per_sec,
            rate_limit_events_burst,
            rate_limit_messages_per_sec,
            rate_limit_messages_burst,
            rate_limit_upload_bytes_per_sec,
            rate_limit_upload_burst_bytes,
            rate_limit_anonymous_rps,
            rate_limit_anonymous_burst,
            retain_deliveries: retention_days(a.retain_deliveries_days),
            retain_watch_changes: retention_days(a.retain_watch_changes_days),
            retain_jobs: retention_days(a.retain_jobs_days),
            retain_audit: retention_days_or(a.retain_audit_days, DEFAULT_RETAIN_AUDIT_DAYS),
            retain_messages: retention_days_or(a.retain_messages_days, 7),
            amqp: amqp_source(a.amqp_url, a.amqp_queue, a.amqp_prefetch)?,
        })
    }
}

/// The log filter: the flag (or `RUBRA_LOG`, or `log-filter` in the configuration file)
/// when given, else `RUST_LOG` when set and not empty, else `info`. Flags win over the
/// generic variable, as for every other setting.
fn log_filter(given: Option<String>, rust_log: Option<String>) -> String {
    given
        .or(rust_log.filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "info".to_owned())
}

/// Days the audit log is kept unless `--retain-audit-days` says otherwise: over a year, so
/// a yearly review finds the whole year.
const DEFAULT_RETAIN_AUDIT_DAYS: u32 = 400;

/// A retention in days (default 30) as a duration; 0 keeps forever (`None`).
fn retention_days(days: Option<u32>) -> Option<Duration> {
    retention_days_or(days, 30)
}

/// A retention in days (default `default`) as a duration; 0 keeps forever (`None`).
fn retention_days_or(days: Option<u32>, default: u32) -> Option<Duration> {
    match days.unwrap_or(default) {
        0 => None,
        d => Some(Duration::from_secs(u64::from(d) * 86_400)),
    }
}

/// Opens the local job root after checking that it exposes nothing of the server's own: it is
/// not `/`, holds none of the `guarded` paths, and is not inside the data folder (which holds
/// every tenant's data). Paths are compared in canonical form; one that does not exist yet
/// (the data folder before the first start) is resolved through its nearest existing
/// ancestor, so a link in that ancestor is seen, and the rest is appended as it will be
/// created.
fn jobs_local_root(
    root: &Path,
    data_dir: &Path,
    guarded: &[(&str, PathBuf)],
) -> Result<rubra_jobs::LocalRoot, SettingsError> {
    let bad = |m: String| invalid("jobs-local-root", m);
    let canonical = root
        .canonicalize()
        .map_err(|e| bad(format!("{}: {e}", root.display())))?;
    if !canonical.is_dir() {
        return Err(bad(format!("{} is not a folder", root.display())));
    }
    if canonical.parent().is_none() {
        return Err(bad(format!(
            "{} is the file system root; name a folder that holds only job files",
            root.display()
        )));
    }
    for (what, path) in guarded {
        let resolved = resolve_for_comparison(path)
            .map_err(|e| bad(format!("cannot resolve the {what} {}: {e}", path.display())))?;
        if resolved.starts_with(&canonical) {
            return Err(bad(format!(
                "{} holds the {what} ({}); name a folder that holds only job files",
                root.display(),
                resolved.display()
            )));
        }
    }
    let data = resolve_for_comparison(data_dir)
        .map_err(|e| bad(format!("cannot resolve the data folder: {e}")))?;
    if canonical.starts_with(&data) {
        return Err(bad(format!(
            "{} is inside the data folder ({})",
            root.display(),
            data.display()
        )));
    }
    rubra_jobs::LocalRoot::open(&canonical).map_err(|e| bad(format!("{}: {e}", root.display())))
}

/// The canonical form of `path`, which may not exist yet: its nearest existing ancestor is
/// canonicalized and the missing components are appended (`..` among them pops one, as it
/// will once they are created as folders).
fn resolve_for_comparison(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let absolute = std::path::absolute(path)?;
    let parts: Vec<Component<'_>> = absolute.components().collect();
    let mut existing = parts.len();
    let mut base = loop {
        if existing == 0 {
            break PathBuf::from("/");
        }
        if let Ok(c) = parts[..existing].iter().collect::<PathBuf>().canonicalize() {
            break c;
        }
        existing -= 1;
    };
    for part in &parts[existing..] {
        match part {
            Component::Normal(p) => base.push(p),
            Component::ParentDir => {
                base.pop();
            }
            _ => {}
        }
    }
    Ok(base)
}

/// The file of a `sqlite:` URL (`None` for an in-memory database).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// The admission queue when none is set: 8 × the cores, at least 16. With the default share
/// (half of slots + queue) one client may then hold at least 8 places, as many as the
/// benchmarks' and a bulk uploader's connections, while another client always finds room.
pub(crate) fn default_admission_queue(cores: usize) -> usize {
    (8 * cores).max(16)
}

fn read_file(path: &Path) -> Result<ConfigArgs, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| SettingsError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_flag_beats_rust_log() {
        let flag = Some("warn".to_owned());
        let env = Some("debug".to_owned());
        assert_eq!(log_filter(flag.clone(), env.clone()), "warn");
        assert_eq!(log_filter(flag, None), "warn");
        assert_eq!(log_filter(None, env), "debug");
        assert_eq!(log_filter(None, Some("  ".to_owned())), "info");
        assert_eq!(log_filter(None, None), "info");
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::validate(ConfigArgs::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("rubra-data"));
        assert!(matches!(s.database, DatabaseUrl::Sqlite(_)));
        assert_eq!(s.storage, BlobUrl::Local(PathBuf::from("rubra-data/blobs")));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Settings::validate(ConfigArgs {
            listen: Some("not-an-addr".into()),
            ..Default::default()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`listen`") && msg.contains("RUBRA_LISTEN"),
            "{msg}"
        );

        let err = Settings::validate(ConfigArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("`database-url`"));
    }

    #[test]
    fn file_values_fill_in_but_flags_win() {
        let file: ConfigArgs = toml::from_str("listen = \"127.0.0.1:9000\"\nslow-ms = 5").unwrap();
        let flags = ConfigArgs {
            slow_ms: Some(7),
            ..Default::default()
        };
        let s = Settings::validate(flags.or(file)).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.slow_ms, Some(7));
    }

    /// Validates with `data_dir` as the data folder and `root` as the jobs root.
    fn with_jobs_root(data_dir: &Path, root: &Path) -> Result<Settings, SettingsError> {
        Settings::validate(ConfigArgs {
            data_dir: Some(data_dir.to_owned()),
            jobs_local_root: Some(root.to_owned()),
            ..Default::default()
        })
    }

    fn refused(r: Result<Settings, SettingsError>, what: &str) {
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("`jobs-local-root`") && msg.contains(what),
            "expected a refusal naming the {what}: {msg:?}"
        );
    }

    #[test]
    fn no_job_source_is_allowed_by_default() {
        let s = Settings::validate(ConfigArgs::default()).unwrap();
        assert!(s.jobs_local_root.is_none());
        assert!(s.jobs_s3_allow.is_empty());
    }

    #[test]
    fn start_up_refuses_the_file_system_root_as_jobs_root() {
        let t = tempfile::tempdir().unwrap();
        refused(
            with_jobs_root(&t.path().join("data"), Path::new("/")),
            "file system root",
        );
    }

    #[test]
    fn start_up_refuses_the_admin_key_through_a_jobs_root_at_the_data_folders_parent() {
        let t = tempfile::tempdir().unwrap();
        // The data folder does not exist yet (first start): still refused.
        refused(
            with_jobs_root(&t.path().join("rubra-data"), t.path()),
            "data folder",
        );
        std::fs::create_dir(t.path().join("rubra-data")).unwrap();
        std::fs::write(t.path().join("rubra-data/admin.key"), "k").unwrap();
        refused(
            with_jobs_root(&t.path().join("rubra-data"), t.path()),
            "data folder",
        );
        // Spelled with `..` and a `.`: the same folder.
        let roundabout = t.path().join("rubra-data/../.");
        refused(
            with_jobs_root(&t.path().join("rubra-data"), &roundabout),
            "data folder",
        );
    }

    #[test]
    fn start_up_refuses_a_jobs_root_holding_the_admin_key_or_inside_the_data_folder() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir_all(data.join("jobs")).unwrap();
        refused(with_jobs_root(&data, &data), "data folder");
        refused(
            with_jobs_root(&data, &data.join("jobs")),
            "inside the data folder",
        );
    }

    #[test]
    fn start_up_refuses_a_jobs_root_reaching_the_data_folder_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("jobs/inner")).unwrap();
        std::os::unix::fs::symlink(t.path().join("jobs/inner"), t.path().join("link")).unwrap();
        // The data folder is jobs/inner/data, named through the link, and not created yet.
        refused(
            with_jobs_root(&t.path().join("link/data"), &t.path().join("jobs")),
            "data folder",
        );
    }

    #[test]
    fn start_up_refuses_a_jobs_root_holding_the_config_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("conf")).unwrap();
        std::fs::write(t.path().join("conf/rubra.toml"), "").unwrap();
        let r = Settings::validate(ConfigArgs {
            config: Some(t.path().join("conf/rubra.toml")),
            data_dir: Some(t.path().join("data")),
            jobs_local_root: Some(t.path().join("conf")),
            ..Default::default()
        });
        refused(r, "configuration file");
    }

    #[test]
    fn a_jobs_root_holding_the_secret_key_file_is_refused_so_no_job_reads_the_key() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("shared")).unwrap();
        std::fs::write(t.path().join("shared/secret.key"), "k:AAAA").unwrap();
        let r = Settings::validate(ConfigArgs {
            data_dir: Some(t.path().join("data")),
            secret_key_file: Some(t.path().join("shared/secret.key")),
            jobs_local_root: Some(t.path().join("shared")),
            ..Default::default()
        });
        refused(r, "secret key file");
    }

    #[test]
    fn start_up_refuses_a_jobs_root_holding_the_database_or_the_blobs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("shared")).unwrap();
        let r = Settings::validate(ConfigArgs {
            data_dir: Some(t.path().join("data")),
            database_url: Some(format!(
                "sqlite://{}?mode=rwc",
                t.path().join("shared/x.db").display()
            )),
            jobs_local_root: Some(t.path().join("shared")),
            ..Default::default()
        });
        refused(r, "SQLite database");
        let r = Settings::validate(ConfigArgs {
            data_dir: Some(t.path().join("data")),
            storage: Some(t.path().join("shared/blobs").display().to_string()),
            jobs_local_root: Some(t.path().join("shared")),
            ..Default::default()
        });
        refused(r, "blob folder");
    }

    #[test]
    fn a_jobs_root_beside_the_data_folder_is_accepted() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("jobs")).unwrap();
        let s = with_jobs_root(&t.path().join("data"), &t.path().join("jobs")).unwrap();
        let root = s.jobs_local_root.expect("root");
        assert_eq!(root.path(), t.path().join("jobs").canonicalize().unwrap());
        refused(
            with_jobs_root(&t.path().join("data"), &t.path().join("missing")),
            "missing",
        );
    }

    #[test]
    fn s3_allow_entries_are_validated_by_name() {
        let s = Settings::validate(ConfigArgs {
            jobs_s3_allow: Some(vec!["bench".into(), "shared/csv/".into()]),
            ..Default::default()
        })
        .unwrap();
        assert!(s.jobs_s3_allow.allows("shared", "csv/a.csv"));
        assert!(!s.jobs_s3_allow.allows("shared", "csv-old/a.csv"));
        for bad in ["", "s3://bench", "bench/pre", "/x/"] {
            let err = Settings::validate(ConfigArgs {
                jobs_s3_allow: Some(vec![bad.into()]),
                ..Default::default()
            })
            .unwrap_err();
            assert!(
                err.to_string().contains("`jobs-s3-allow`"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn unknown_file_keys_are_refused_by_name() {
        let err = toml::from_str::<ConfigArgs>("lissen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lissen"), "{err}");
    }

    #[test]
    fn rate_limits_default_and_refuse_zero_by_name() {
        let s = Settings::validate(ConfigArgs::default()).unwrap();
        assert_eq!(
            (s.rate_limit_rps.get(), s.rate_limit_burst.get()),
            (2000, 4000)
        );
        let file: ConfigArgs = toml::from_str("rate-limit-rps = 5\nrate-limit-burst = 7").unwrap();
        let s = Settings::validate(file).unwrap();
        assert_eq!((s.rate_limit_rps.get(), s.rate_limit_burst.get()), (5, 7));
        for (rps, burst, key) in [(0, 1, "`rate-limit-rps`"), (1, 0, "`rate-limit-burst`")] {
            let err = Settings::validate(ConfigArgs {
                rate_limit_rps: Some(rps),
                rate_limit_burst: Some(burst),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
