fn main() -> anyhow::Result<()> {
    println!(
        "attune {} (protocol v{}): the commands are not built yet",
        attune_client::VERSION,
        attune_client::PROTOCOL_VERSION
    );
    Ok(())
}
