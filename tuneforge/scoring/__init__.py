"""TuneForge scoring."""
