fn main() -> anyhow::Result<()> {
    println!(
        "attune-relay {} (protocol v{}): the relay service is not built yet",
        attune_relay::VERSION,
        attune_relay::PROTOCOL_VERSION
    );
    Ok(())
}
