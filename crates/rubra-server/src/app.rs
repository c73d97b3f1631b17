//! Start-up and shutdown of the API server: open the [`Services`], make the first admin key,
//! bind the listener, serve until told to stop.

use crate::admission::{Admission, StreamCaps};
use crate::routes::router;
use crate::services::{Services, StartError};
use crate::settings::Settings;
use crate::state::{AppState, KeyCache};
use rubra_store::ApiKey;
use rubra_telemetry::Telemetry;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound, ready-to-run API server.
pub struct Application {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    services: Services,
    admin_key: Option<ApiKey>,
}

impl Application {
    /// Opens everything, makes the first admin key if this installation has none, and binds
    /// the listen address (port 0 picks a free port, as the tests do).
    pub async fn build(settings: Settings, telemetry: Telemetry) -> Result<Self, StartError> {
        match crate::serve::raise_open_file_limit() {
            Some(n) => tracing::info!(open_files = n, "open-file limit"),
            None => tracing::info!("open-file limit: unlimited or unknown"),
        }
        // The certificate first: a bad file stops the start before anything is opened.
        let certificates = settings
            .tls
            .clone()
            .map(crate::tls::Certificates::load)
            .transpose()?;
        let services = Services::open(settings).await?;
        let admin_key = bootstrap_admin_key(&services).await?;
        let addr = services.settings.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let state = AppState {
            store: services.store.clone(),
            blobs: services.blobs.clone(),
            settings: services.settings.clone(),
            keys: Arc::new(KeyCache::default()),
            limiter: Arc::default(),
            events: Arc::default(),
            anonymous: Arc::default(),
            uploads: Arc::default(),
            messages: Arc::default(),
            telemetry,
            shutdown: CancellationToken::new(),
            overlays: Arc::default(),
            remote_overlays: Arc::new(remote_overlay_cache(&services.settings)?),
            admission: Admission::new(
                services.settings.admission_slots,
                services.settings.admission_queue,
                services.settings.max_decode_pixels_in_flight,
                services.settings.admission_client_share,
            ),
            streams: StreamCaps::new(services.settings.max_streams_per_client),
            wakeups: services.wakeups.clone(),
        };
        let tls = match certificates {
            Some(certificates) => {
                certificates.reload_on_sighup(state.shutdown.clone())?;
                Some(certificates.acceptor()?)
            }
            None => None,
        };
        Ok(Application {
            listener,
            tls,
            state,
            services,
            admin_key,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.settings.listen)
    }

    /// `https` with `--tls-cert`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The admin key, if this start created it (it is shown once, then only its hash remains).
    pub fn admin_key(&self) -> Option<&ApiKey> {
        self.admin_key.as_ref()
    }

    /// The shared state, for tests that need to reach the store directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Starts the workers, serves until `shutdown` completes (or the state's shutdown token is
    /// cancelled), then stops accepting, ends the event streams, lets in-flight requests
    /// finish, and stops the workers.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let token = self.state.shutdown.clone();
        // The workers stop after the requests in flight, which may still hand them work.
        let workers_token = CancellationToken::new();
        let workers = crate::workers::spawn(&self.services, &workers_token);
        let settings = Arc::clone(&self.state.settings);
        let app = router(self.state);
        tracing::info!(addr = %self.listener.local_addr().map_err(StartError::Serve)?, "listening");
        let stop_token = token.clone();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = stop_token.cancelled() => {}
            }
            // Streams watch this token: they end now instead of holding the drain open.
            stop_token.cancel();
        };
        crate::serve::serve(self.listener, self.tls, app, &settings, stop).await;
        token.cancel();
        workers_token.cancel();
        workers.join().await;
        Ok(())
    }
}

/// The cache of overlays fetched from `--fetch-allow` hosts, limited like stored overlays.
fn remote_overlay_cache(
    settings: &Settings,
) -> Result<rubra_fetch::FetchCache<crate::overlay_cache::OverlayEntry>, StartError> {
    let mut policy =
        rubra_fetch::FetchPolicy::new(rubra_fetch::AllowList::new(&settings.fetch_allow));
    policy.max_bytes = crate::routes::overlays::MAX_OVERLAY_BYTES;
    let fetcher = rubra_fetch::Fetcher::new(policy)?;
    Ok(rubra_fetch::FetchCache::new(
        fetcher,
        rubra_fetch::CachePolicy::default(),
    ))
}

/// Creates the first admin key on a fresh installation and writes it to `admin.key`
/// (mode 0600) in the data folder. Returns it when this call created it.
///
/// The key is on disk before its hash is committed, so a failed write stops the start
/// without using up the installation's one bootstrap: the next start makes a key again.
async fn bootstrap_admin_key(services: &Services) -> Result<Option<ApiKey>, StartError> {
    let key = ApiKey::generate();
    let path = services.settings.data_dir.join("admin.key");
    // A name of its own, so processes starting together on one data folder never share it.
    let pending = services
        .settings
        .data_dir
        .join(format!("admin.key.{}.new", rubra_store::random_id(8)));
    let data_dir_error = |path: &Path, source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    crate::secret_key::write_secret(&pending, key.reveal())
        .map_err(|e| data_dir_error(&pending, e))?;
    // Whatever sits at `admin.key` is replaced by the rename below; a folder cannot be.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_file(&pending);
        return Err(data_dir_error(
            &path,
            std::io::Error::other("admin.key is a folder; move it away"),
        ));
    }
    if !services.store.bootstrap_admin_key(&key.hash()).await? {
        let _ = std::fs::remove_file(&pending);
        return Ok(None);
    }
    // rename() replaces a file or a planted link itself, never what a link points to.
    std::fs::rename(&pending, &path).map_err(|e| data_dir_error(&path, e))?;
    Ok(Some(key))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
