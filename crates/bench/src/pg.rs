//! Databases for relays on PostgreSQL (`--pg`): a new one for each relay the
//! bench starts, so no scenario inherits another's rows.

use anyhow::Context;

/// Makes `attune_bench_<pid>_<n>` on the server `admin` names; its URL.
pub async fn fresh_database(admin: &str, n: usize) -> anyhow::Result<String> {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .context("connecting to the PostgreSQL server given with --pg")?;
    let driver = tokio::spawn(conn);
    let name = format!("attune_bench_{}_{n}", std::process::id());
    // One statement each: CREATE DATABASE cannot share a transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .await
            .context("creating the bench's database")?;
    }
    drop(client);
    let _ = driver.await;
    let (base, _) = admin
        .rsplit_once('/')
        .context("the --pg URL must name a database: postgres://USER@HOST:PORT/DB")?;
    Ok(format!("{base}/{name}"))
}
