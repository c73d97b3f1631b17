//! Poll a JSON source and say exactly what changed.
//!
//! A watched source is fetched with a conditional GET through [`rubra_fetch::Fetcher`] (so the
//! same allow-list, size limit and timeouts as every outbound request apply); a `304` or the
//! same bytes cost no parse. A new version is compared with the last one by `rubra-jsondiff`
//! with exact numbers, ordered arrays by default or arrays keyed by a member, and each
//! difference becomes a [`Change`] whose path is a JSON Pointer into the document.
//!
//! ```
//! use rubra_watch::{Compare, Op, changes};
//!
//! let old = r#"{"odds": {"home": 1.85, "away": 2.10}}"#;
//! let new = r#"{"odds": {"home": 1.90, "away": 2.10}}"#;
//! let found = changes(old, new, &Compare::default())?;
//! assert_eq!(found[0].path, "/odds/home");
//! assert_eq!(found[0].op, Op::Replace);
//! assert_eq!(found[0].new.as_deref(), Some("1.90"));
//! # Ok::<(), rubra_watch::WatchError>(())
//! ```
//!
//! Scheduling, leases and storage are the server's: this crate polls once when asked.
#![deny(missing_docs)]

mod compare;
mod error;
mod poll;
mod select;

pub use compare::{Change, Compare, MAX_DEPTH, Op, changes, parse};
pub use error::WatchError;
pub use poll::{Polled, Source, next_delay, poll};
pub use select::{check_pointer, select};
