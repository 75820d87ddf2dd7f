"""TuneForge miner."""
