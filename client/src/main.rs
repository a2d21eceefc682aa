use clap::FromArgMatches;

#[tokio::main]
async fn main() {
    // The grammar with the grouped help (`attune --help`).
    let matches = attune_cli::help::command().get_matches();
    let cli = attune_cli::args::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let code = match attune_cli::commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // An error can quote the relay's own words: shown inert.
            eprintln!("attune: {}", attune_core::inert::line(&e.to_string()));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
