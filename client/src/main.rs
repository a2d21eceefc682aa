use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = attune_client::cli::Cli::parse();
    let code = match attune_client::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // An error can quote the relay's own words: shown inert.
            eprintln!("attune: {}", attune_client::inert::line(&e.to_string()));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
