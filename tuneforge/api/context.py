"""Everything a request handler needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuneforge.api.db import Database
from tuneforge.api.jobs import JobService
from tuneforge.api.metrics import ApiMetrics
from tuneforge.api.ratelimit import RateLimiter
from tuneforge.api.scores import ScoreService
from tuneforge.api.settings import ApiSettings
from tuneforge.api.storage import AudioStore
from tuneforge.auth.nonces import NonceStore
from tuneforge.chain.metagraph import MetagraphCache
from tuneforge.scoring.fingerprint import encoded_limit

# A full batch of the longest fingerprints, plus the JSON around them.
MATCH_BODY_BYTES = 256 * (encoded_limit() + 128)

if TYPE_CHECKING:  # these routes import this module through deps
    from tuneforge.api.fingerprints import FingerprintService
    from tuneforge.api.leaderboard import Leaderboard
    from tuneforge.api.votes import VoteService
    from tuneforge.api.webhooks import WebhookSender


@dataclass
class ApiContext:
    settings: ApiSettings
    db: Database
    store: AudioStore
    jobs: JobService
    scores: ScoreService
    limiter: RateLimiter
    nonces: NonceStore
    metagraph: MetagraphCache
    metrics: ApiMetrics
    leaderboard: Leaderboard
    fingerprints: FingerprintService
    webhooks: WebhookSender
    votes: VoteService

    def body_limit(self, method: str, path: str) -> int:
        """Bytes a request body may have: WAV uploads, result bundles, or small JSON."""
        if method == "PUT" and path.startswith(
            ("/api/v1/scores/audio/", "/api/v1/validator/audio/")
        ):
            return self.settings.max_audio_bytes
        if method == "POST" and (
            path == "/api/v1/scores"
            or (path.startswith("/api/v1/validator/jobs/") and path.endswith("/result"))
        ):
            return self.settings.max_scores_body_bytes
        if method == "POST" and path == "/api/v1/fingerprints/match":
            return max(self.settings.max_json_body_bytes, MATCH_BODY_BYTES)
        return self.settings.max_json_body_bytes
