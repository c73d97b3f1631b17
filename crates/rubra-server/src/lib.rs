//! Rubra's HTTP API and the processes around it.
//!
//! [`Settings`] are loaded once; [`Application::build`] opens the store and binds the
//! listener; [`router`] is the whole API as an axum `Router` (tests call it directly or bind
//! port 0). Handlers live in `routes/`, one file per resource; errors are [`ApiError`].
#![deny(missing_docs)]

mod admission;
mod app;
mod codes;
mod error;
mod extract;
mod idempotency;
mod integral;
mod middleware;
mod openapi;
mod overlay_cache;
mod quotas;
mod ratelimit;
mod red_level;
mod relay;
mod routes;
mod secret_key;
mod serve;
mod services;
mod settings;
mod state;
mod throttle;
mod timefmt;
mod tls;
mod wake;
pub mod workers;

pub use app::{Application, shutdown_signal};
pub use codes::ErrorCode;
pub use error::{ApiError, ApiResult};
pub use openapi::{document as openapi_document, document_json as openapi_json};
pub use routes::router;
pub use secret_key::SecretKeyFile;
pub use services::{Services, StartError};
pub use settings::{ConfigArgs, Settings, SettingsError};
pub use state::AppState;
pub use tls::{Certificates, TlsFiles};
pub use wake::{JobRuns, Wakeups, WatchClaims};

/// Administrative operations shared by the API and the `rubra admin` command.
pub mod admin {
    pub use crate::routes::clients::{
        ClientView, CreatedClient, create_client_with_key, set_client_disabled,
    };
    pub use crate::routes::keys::{
        CreatedKey, KeyView, create_admin_key, create_key, revoke_admin_key, revoke_key,
    };

    /// Reads an instant given as RFC 3339 text or epoch milliseconds, as the API does.
    pub fn parse_instant(s: &str) -> Result<i64, String> {
        crate::timefmt::parse_timestamp(s)
            .map(rubra_store::Timestamp::as_ms)
            .map_err(|e| e.to_string())
    }
}
