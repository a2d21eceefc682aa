use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    attune_bench::run(attune_bench::Args::parse()).await
}
