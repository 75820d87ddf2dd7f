"""Several backends behind one: vocal challenges go to the singing backend, the rest to the main.

A miner may hold MusicGen for instrumentals and ACE-Step for songs; the miner app sees one
`Backend` and asks `route()` which one answered (for the response's model header).
"""

from __future__ import annotations

from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.base import Backend


class RoutedBackend:
    """`main` for everything, except vocal challenges, which go to `vocal`."""

    def __init__(self, main: Backend, vocal: Backend) -> None:
        self.main = main
        self.vocal = vocal
        self.name = f"{main.name}+{vocal.name}"
        self.model_id = main.model_id
        self.sample_rate = main.sample_rate
        self.sings = vocal.sings or main.sings
        # Every backend must accept what the miner admits.
        self.max_duration_seconds = min(main.max_duration_seconds, vocal.max_duration_seconds)

    def load(self) -> None:
        self.main.load()
        self.vocal.load()
        self.sample_rate = self.main.sample_rate

    def route(self, request: MusicGenerationSynapse) -> Backend:
        return self.vocal if request.vocals else self.main

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        return self.route(request).generate(request)
