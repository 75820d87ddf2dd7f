"""Foundations: the wire protocol, audio I/O, configuration, errors and process plumbing.

Imports nothing else of tuneforge but `chain/` (tests/test_floors.py)."""
