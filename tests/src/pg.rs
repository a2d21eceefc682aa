//! The test PostgreSQL server: `ATTUNE_TEST_POSTGRES` names it (an admin URL;
//! `.ci/postgres start DIR` starts one and prints it), and each relay that
//! runs on it gets a database of its own.

use std::sync::atomic::{AtomicU32, Ordering};

/// Whether relays in this test process run on PostgreSQL
/// (`ATTUNE_TEST_ENGINE=postgres`).
pub fn engine_is_postgres() -> bool {
    std::env::var("ATTUNE_TEST_ENGINE").is_ok_and(|v| v == "postgres")
}

/// The test server's admin URL. Without one a test that needs it is skipped,
/// except under CI (`CI=true`), where that is a failure: CI starts the server.
pub fn server() -> Option<String> {
    match std::env::var("ATTUNE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but ATTUNE_TEST_POSTGRES is unset: .ci/run starts PostgreSQL and sets it"
            )
        }
        _ => {
            eprintln!(
                "skipped: no test PostgreSQL (eval \"$(.ci/postgres start /tmp/attune-pg)\" starts one)"
            );
            None
        }
    }
}

/// Runs `f` with a client of `url`, on a thread of its own (callers may be
/// inside a runtime already).
fn with_client<T: Send + 'static>(
    url: &str,
    f: impl for<'a> FnOnce(
            &'a tokio_postgres::Client,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>
        + Send
        + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("the test PostgreSQL server answers");
            tokio::spawn(conn);
            f(&client).await
        })
    })
    .join()
    .expect("the PostgreSQL helper thread")
}

/// A new, empty database on the test server: its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = server().expect("ATTUNE_TEST_ENGINE=postgres needs ATTUNE_TEST_POSTGRES");
    let name = format!(
        "attune_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        &hex::encode(crate::random16())[..8]
    );
    let create = format!("CREATE DATABASE {name}");
    with_client(&admin, move |c| {
        Box::pin(async move {
            c.batch_execute(&create)
                .await
                .expect("the test database is created");
        })
    });
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the admin URL names a database");
    format!("{base}/{name}")
}

/// The first column of the first row of `sql`, as a number.
pub fn query_i64(url: &str, sql: &str) -> i64 {
    let sql = sql.to_string();
    with_client(url, move |c| {
        Box::pin(async move {
            let row = c
                .query_one(sql.as_str(), &[])
                .await
                .expect("the query runs");
            row.try_get::<_, i64>(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .expect("a number")
        })
    })
}

/// Runs statements on `url` (to set a test up, or to break something).
pub fn execute(url: &str, sql: &str) {
    let sql = sql.to_string();
    with_client(url, move |c| {
        Box::pin(async move {
            c.batch_execute(&sql).await.expect("the statements run");
        })
    })
}
