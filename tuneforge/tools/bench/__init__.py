"""TuneForge bench."""
