"""TuneForge scoring: clips and a challenge in, explained scores out (DESIGN.md §5)."""
