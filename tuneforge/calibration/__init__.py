"""Calibration data for the reward: real music, cheap fakes made for the same challenge, and
degraded twins of the real pieces. `tuneforge bench reward` scores them; nothing here is used by a
validator at run time."""
