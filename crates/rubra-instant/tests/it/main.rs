//! `parse_timestamp` and `format_ms` against an independent reading (epoch milliseconds as
//! a plain decimal, RFC 3339 by `chrono`), as the fuzz target `parse_instant` checks them,
//! on generated texts; and the regression tests of what that target found.

mod oracle;
mod regressions;
