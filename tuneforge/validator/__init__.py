"""TuneForge validator."""
