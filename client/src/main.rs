use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = attune_client::cli::Cli::parse();
    let code = match attune_client::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("attune: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
