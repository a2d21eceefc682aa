use anyhow::Context;
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = attune_relay::Config::parse();
    // Blocking work is reads (at most --readers at once) and handing batches to
    // rayon's pool for their signature checks: as many threads as readers do it.
    // Each extra thread can take a malloc arena of its own and keep what it
    // freed: with tokio's default (up to 512) a thousand streams reconnecting at
    // once took the relay to 65 MiB, with this to 54 (load_faults.rs).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.readers.max(2))
        .build()
        .context("could not start the relay's runtime")?
        .block_on(run(config))
}

async fn run(mut config: attune_relay::Config) -> anyhow::Result<()> {
    if let Some(attune_relay::config::RelayCommand::Backup { out }) = &config.command {
        let db = match config
            .database()
            .context("no database path: pass --db or set ATTUNE_RELAY_DB")?
        {
            attune_relay::config::Database::Sqlite(path) => path,
            attune_relay::config::Database::Postgres(_) => anyhow::bail!(
                "backup copies a SQLite database; on PostgreSQL use its own tools \
                 (pg_dump --format=custom, or continuous archiving): see README.md"
            ),
        };
        let bytes = attune_relay::store::sqlite::backup(&db, out)
            .with_context(|| format!("could not back up {}", db.display()))?;
        println!(
            "backed up {} to {} ({bytes} bytes)",
            db.display(),
            out.display()
        );
        return Ok(());
    }
    if let Some(attune_relay::config::RelayCommand::Health) = &config.command {
        return match attune_relay::health::check(&config).await {
            Ok(attune_relay::health::Healthy::Answered { addr }) => {
                println!("healthy: the relay on {addr} answered");
                Ok(())
            }
            Ok(attune_relay::health::Healthy::Accepting { addr }) => {
                println!("healthy: the relay on {addr} accepts connections (TLS: not requested)");
                Ok(())
            }
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::exit(1);
            }
        };
    }
    // Before listening: no request signed earlier can be a fresh one.
    config.started_ms = Some(attune_relay::auth::now_ms());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .context("--log is not a valid filter (try `info`)")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    // Tests and scripts read the bound address (useful with port 0) from stdout.
    println!("listening on {}", listener.local_addr()?);
    attune_relay::serve(listener, config, attune_relay::shutdown_signal()).await?;
    Ok(())
}
