"""TuneForge api."""
