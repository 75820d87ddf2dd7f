"""Command lines and benches: the top floor, free to import every other."""
