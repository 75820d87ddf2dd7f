"""The validator state's repositories: one job each, over one shared SQLite connection.

`ValidatorState` (validator/state.py) opens the `Database` and owns the transaction boundary;
each repository here reads and writes its own tables through it.
"""
