//! `rubra admin`: create clients and keys, run migrations, from the command line.

use clap::{Args, Subcommand};
use rubra_server::{ConfigArgs, Services, Settings};
use rubra_store::{ApiKey, NewKey, Principal};
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
    /// Apply pending database migrations and exit.
    Migrate,
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
    // Opening the services applies migrations.
    let services = Services::open(settings).await?;
    match args.command {
        AdminCommand::Migrate => {
            println!("migrations applied ({})", services.store.backend());
        }
        AdminCommand::CreateClient { name } => {
            match rubra_server::admin::create_client_with_key(services.store.as_ref(), &name).await
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
                .insert_key(&NewKey {
                    hash: key.hash(),
                    principal: Principal::Admin,
                    label: "created by rubra admin".to_owned(),
                })
                .await?;
            println!("{}", key.reveal());
        }
    }
    Ok(ExitCode::SUCCESS)
}
