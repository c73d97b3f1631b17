//! `rubra admin`: create clients and keys, list and revoke keys, disable and enable clients,
//! run migrations, from the command line.

use clap::{Args, Subcommand};
use rubra_server::admin;
use rubra_server::{ConfigArgs, Services, Settings};
use rubra_store::{Actor, ApiKey, ClientId, KeyId, NewKey, Principal, Scope, Store};
use std::process::ExitCode;

/// Arguments of `rubra admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a client and print its id and first API key as JSON.
    CreateClient {
        /// The client's unique name.
        name: String,
    },
    /// Create another admin key and print it (e.g. when admin.key was lost).
    CreateAdminKey,
    /// List the admin keys as JSON (never the keys themselves).
    ListAdminKeys,
    /// Revoke an admin key (not the last one); every process refuses it within a second.
    RevokeAdminKey {
        /// The key's id (`key_…`, from list-admin-keys).
        key_id: String,
    },
    /// Make another API key for a client and print it (once) with its id, as JSON.
    CreateKey {
        /// The client's id (`cl_…`).
        client: String,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// When the key stops working: RFC 3339 or epoch milliseconds.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List a client's keys as JSON (never the keys themselves).
    ListKeys {
        /// The client's id.
        client: String,
    },
    /// Revoke a client's key (its last one too); every process refuses it within a second.
    RevokeKey {
        /// The client's id.
        client: String,
        /// The key's id (`key_…`).
        key_id: String,
    },
    /// Disable a client: its keys are refused, its jobs, watches and deliveries wait.
    DisableClient {
        /// The client's id.
        client: String,
    },
    /// Enable a disabled client again.
    EnableClient {
        /// The client's id.
        client: String,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-seal every stored secret (webhook secrets, Viber tokens, watch headers) under the
    /// first key of the secret key file; the keys after it may then be removed from the file.
    RotateSecrets,
}

/// Runs one admin command against the configured database.
pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load(args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rubra: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Opening the services applies migrations. Only a command that reads or writes secrets
    // needs the secret key file.
    let services = if matches!(args.command, AdminCommand::RotateSecrets) {
        Services::open(settings).await?
    } else {
        Services::open_without_secret_key(settings).await?
    };
    let max_keys = services.settings.max_keys_per_client;
    match keys(services.store.as_ref(), max_keys, &args.command).await {
        Some(Ok(())) => return Ok(ExitCode::SUCCESS),
        Some(Err(e)) => {
            eprintln!("rubra: {e}");
            return Ok(ExitCode::FAILURE);
        }
        None => {}
    }
    match args.command {
        AdminCommand::Migrate => {
            println!("migrations applied ({})", services.store.backend());
        }
        AdminCommand::CreateClient { name } => {
            match rubra_server::admin::create_client_with_key(
                services.store.as_ref(),
                &name,
                &Actor::cli(),
            )
            .await
            {
                Ok(created) => println!("{}", serde_json::to_string_pretty(&created)?),
                Err(e) => {
                    eprintln!("rubra: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        AdminCommand::CreateAdminKey => {
            let key = ApiKey::generate();
            services
                .store
                .insert_key(
                    &NewKey::new(&key, Principal::Admin, "created by rubra admin"),
                    &Actor::cli(),
                )
                .await?;
            println!("{}", key.reveal());
        }
        AdminCommand::RotateSecrets => {
            let done = services.store.rotate_secret_keys(&Actor::cli()).await?;
            println!(
                "{} stored secrets re-sealed under the first key of {}; the other keys may now \
                 be removed from it",
                done.resealed,
                services.settings.secret_key.path.display()
            );
        }
        AdminCommand::CreateKey { .. }
        | AdminCommand::ListKeys { .. }
        | AdminCommand::RevokeKey { .. }
        | AdminCommand::ListAdminKeys
        | AdminCommand::RevokeAdminKey { .. }
        | AdminCommand::DisableClient { .. }
        | AdminCommand::EnableClient { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// An API error as the command line shows it: its message.
fn api(e: rubra_server::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Runs the key and client-state commands (the same operations as the API's); `None` for
/// the other commands.
async fn keys(
    store: &dyn Store,
    max_keys: u32,
    command: &AdminCommand,
) -> Option<anyhow::Result<()>> {
    let client = |id: &str| {
        ClientId::parse(id).ok_or_else(|| anyhow::anyhow!("{id} is not a client id (cl_…)"))
    };
    let result = match command {
        AdminCommand::CreateKey {
            client: id,
            name,
            expires_at,
        } => {
            async {
                let expires = match expires_at {
                    Some(t) => Some(
                        rubra_server::admin::parse_instant(t)
                            .map_err(|e| anyhow::anyhow!("--expires-at: {e}"))?,
                    ),
                    None => None,
                };
                let created = admin::create_key(
                    store,
                    max_keys,
                    &client(id)?,
                    name.as_deref(),
                    expires,
                    &Actor::cli(),
                )
                .await
                .map_err(api)?;
                println!("{}", serde_json::to_string_pretty(&created)?);
                Ok(())
            }
            .await
        }
        AdminCommand::ListKeys { client: id } => {
            async {
                let id = client(id)?;
                if store.get_client(&Scope::All, &id).await?.is_none() {
                    anyhow::bail!("no client {id}");
                }
                let keys: Vec<admin::KeyView> = store
                    .list_keys(&id)
                    .await?
                    .into_iter()
                    .map(admin::KeyView::from)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&keys)?);
                Ok(())
            }
            .await
        }
        AdminCommand::RevokeKey { client: id, key_id } => {
            async {
                let key = KeyId::parse(key_id)
                    .ok_or_else(|| anyhow::anyhow!("{key_id} is not a key id"))?;
                admin::revoke_key(store, &client(id)?, &key, false, &Actor::cli())
                    .await
                    .map_err(api)?;
                println!("revoked {key}");
                Ok(())
            }
            .await
        }
        AdminCommand::ListAdminKeys => {
            async {
                let keys: Vec<admin::KeyView> = store
                    .list_admin_keys()
                    .await?
                    .into_iter()
                    .map(admin::KeyView::from)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&keys)?);
                Ok(())
            }
            .await
        }
        AdminCommand::RevokeAdminKey { key_id } => {
            async {
                let key = KeyId::parse(key_id)
                    .ok_or_else(|| anyhow::anyhow!("{key_id} is not a key id"))?;
                admin::revoke_admin_key(store, &key, &Actor::cli())
                    .await
                    .map_err(api)?;
                println!("revoked {key}");
                Ok(())
            }
            .await
        }
        AdminCommand::DisableClient { client: id } | AdminCommand::EnableClient { client: id } => {
            async {
                let disabled = matches!(command, AdminCommand::DisableClient { .. });
                let c = admin::set_client_disabled(store, &client(id)?, disabled, &Actor::cli())
                    .await
                    .map_err(api)?;
                let c = admin::ClientView::from(c);
                println!("{}", serde_json::to_string_pretty(&c)?);
                Ok(())
            }
            .await
        }
        _ => return None,
    };
    Some(result)
}
