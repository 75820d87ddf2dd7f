"""TuneForge generation."""
