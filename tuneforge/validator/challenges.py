"""Challenge generator: a seeded, varied `MusicGenerationSynapse` per round.

A challenge looks exactly like a customer job to a miner: same model, same id format, a seed is
always present. The round seed mixes a per-validator secret into sha256(hotkey, round, attempt)
because a seed from public values alone would let miners compute the next challenge in advance.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuneforge.core.protocol import SEED_LIMIT, MusicGenerationSynapse
from tuneforge.core.publication import content_of


@dataclass(frozen=True)
class Genre:
    name: str
    tempo: tuple[int, int]  # inclusive BPM range typical of the genre
    instruments: tuple[str, ...]
    moods: tuple[str, ...]


GENRES: tuple[Genre, ...] = (
    Genre("pop", (95, 130), ("piano", "synth", "electric guitar", "bass", "drums", "strings"),
          ("uplifting", "happy", "romantic", "energetic", "nostalgic")),
    Genre("rock", (100, 150), ("electric guitar", "bass guitar", "drums", "organ", "piano"),
          ("energetic", "aggressive", "rebellious", "triumphant", "gritty")),
    Genre("jazz", (80, 180), ("saxophone", "trumpet", "upright bass", "piano", "drums", "guitar"),
          ("smooth", "relaxed", "sophisticated", "playful", "melancholic")),
    Genre("classical", (60, 140), ("violin", "cello", "piano", "flute", "oboe", "french horn"),
          ("majestic", "serene", "dramatic", "tender", "melancholic")),
    Genre("electronic", (118, 135), ("synth", "drum machine", "bass synth", "pads", "arpeggiator"),
          ("euphoric", "hypnotic", "energetic", "futuristic", "dark")),
    Genre("hip hop", (80, 100), ("drums", "bass", "piano", "turntables", "synth", "strings"),
          ("confident", "gritty", "chill", "dark", "boastful")),
    Genre("lo-fi", (70, 90), ("piano", "drums", "bass", "guitar", "vinyl crackle", "rhodes"),
          ("calm", "nostalgic", "dreamy", "melancholic", "cozy")),
    Genre("ambient", (60, 90), ("pads", "synth", "piano", "field recordings", "strings"),
          ("serene", "ethereal", "meditative", "mysterious", "calm")),
    Genre("country", (90, 130), ("acoustic guitar", "banjo", "fiddle", "pedal steel", "bass"),
          ("heartfelt", "upbeat", "nostalgic", "warm", "lonesome")),
    Genre("blues", (60, 120), ("electric guitar", "harmonica", "piano", "bass", "drums"),
          ("soulful", "melancholic", "gritty", "laid-back", "longing")),
    Genre("reggae", (70, 95), ("bass", "drums", "guitar", "organ", "horns"),
          ("laid-back", "sunny", "positive", "relaxed", "groovy")),
    Genre("metal", (110, 200), ("distorted guitar", "bass guitar", "double kick drums", "drums"),
          ("aggressive", "dark", "intense", "epic", "furious")),
    Genre("folk", (80, 120), ("acoustic guitar", "mandolin", "fiddle", "accordion", "upright bass"),
          ("warm", "wistful", "pastoral", "gentle", "hopeful")),
    Genre("funk", (95, 120), ("slap bass", "electric guitar", "drums", "horns", "clavinet"),
          ("groovy", "funky", "playful", "energetic", "confident")),
    Genre("cinematic", (60, 120), ("orchestra", "strings", "brass", "timpani", "choir", "piano"),
          ("epic", "suspenseful", "heroic", "dramatic", "mysterious")),
    Genre("latin", (90, 130), ("congas", "guitar", "piano", "trumpet", "bass", "timbales"),
          ("passionate", "festive", "sensual", "energetic", "warm")),
    Genre("r&b", (65, 100), ("electric piano", "bass", "drums", "synth", "guitar"),
          ("smooth", "sensual", "romantic", "soulful", "chill")),
    Genre("techno", (125, 145), ("drum machine", "synth", "bass synth", "hi-hats", "pads"),
          ("hypnotic", "dark", "driving", "industrial", "relentless")),
)  # fmt: skip

TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
VOCALS_PROBABILITY = 0.2

_LYRIC_SUBJECTS = (
    "the city lights",
    "an open road",
    "the morning sun",
    "a distant shore",
    "the summer rain",
    "your heartbeat",
    "the midnight train",
    "a paper moon",
    "the river",
    "old photographs",
    "the northern wind",
    "a quiet street",
)
_LYRIC_VERBS = ("calling me home", "fading away", "burning bright", "holding on",
                "drifting slow", "singing along", "coming alive", "leading me on",
                "breaking through", "falling down", "shining on", "waiting for me")  # fmt: skip
_PROMPT_TEMPLATES = (
    "A {mood} {genre} track at {tempo} BPM in {key}, featuring {instruments}{vocals}.",
    "{Mood} {genre} piece in {key} around {tempo} BPM with {instruments}{vocals}.",
    "Compose a {mood} {genre} song, {tempo} BPM, key of {key}, played on {instruments}{vocals}.",
    "{Genre} instrumental with a {mood} feel: {instruments}, {tempo} BPM, {key}{vocals}.",
)


def round_seed(validator_hotkey: str, round_number: int, secret: bytes, attempt: int = 0) -> bytes:
    """32 bytes: sha256 over the validator hotkey, round number, attempt and a private secret."""
    material = f"tuneforge-challenge|{validator_hotkey}|{round_number}|{attempt}|".encode()
    return hashlib.sha256(material + secret).digest()


def miner_seed(seed: bytes, miner_hotkey: str) -> int:
    """The generation seed sent to one miner: the round's prompt, but a seed of its own.

    Honest miners often run the same open model; with one shared seed they would return
    identical audio and the copy detection could not tell them from a miner relaying another's
    answer. Derived from the round seed, so a round stays reproducible.
    """
    digest = hashlib.sha256(b"tuneforge-miner-seed|" + seed + miner_hotkey.encode()).digest()
    return int.from_bytes(digest[:4], "big") % SEED_LIMIT


def challenge_id_from_seed(seed: bytes) -> str:
    """An id in `protocol.new_challenge_id`'s format ("ch_" + 32 hex), derived from the seed."""
    return "ch_" + hashlib.sha256(b"tuneforge-challenge-id|" + seed).hexdigest()[:32]


def synapse_seed(seed: bytes) -> int:
    """The `seed` field of a synapse built from `seed` (challenges and jobs alike)."""
    return (
        int.from_bytes(hashlib.sha256(b"tuneforge-seed|" + seed).digest()[:4], "big") % SEED_LIMIT
    )


def job_seed(validator_hotkey: str, request_id: str, secret: bytes) -> bytes:
    """32 bytes for a customer job, mixed with the same private secret as round seeds."""
    material = f"tuneforge-job|{validator_hotkey}|{request_id}|".encode()
    return hashlib.sha256(material + secret).digest()


def challenge_for_job(seed: bytes, request: Mapping[str, Any]) -> MusicGenerationSynapse:
    """A customer job as miners see it: the content of the customer's request, the id and seed
    derived from `seed` exactly as `make_challenge` derives them, so a job cannot be told from
    a challenge by its id format or seed. Raises pydantic.ValidationError on bad content."""
    if len(seed) < 16:
        raise ValueError("challenge seed must carry at least 128 bits")
    # Only what a customer may choose is taken: id and seed are always the validator's.
    return MusicGenerationSynapse(
        challenge_id=challenge_id_from_seed(seed), seed=synapse_seed(seed), **content_of(request)
    )


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _lyrics(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(2, 4)):
        lines.append(f"{rng.choice(_LYRIC_SUBJECTS).capitalize()}, {rng.choice(_LYRIC_VERBS)}")
    return "\n".join(lines)


def make_challenge(
    seed: bytes, min_seconds: float = 5.0, max_seconds: float = 30.0
) -> MusicGenerationSynapse:
    """A challenge fully determined by `seed` (same seed -> identical challenge)."""
    if len(seed) < 16:
        raise ValueError("challenge seed must carry at least 128 bits")
    if min_seconds > max_seconds:
        raise ValueError("min_seconds must not exceed max_seconds")
    rng = random.Random(int.from_bytes(seed, "big"))
    genre = rng.choice(GENRES)
    mood = rng.choice(genre.moods)
    tempo = rng.randint(*genre.tempo)
    key = f"{rng.choice(TONICS)} {rng.choice(MODES)}"
    instruments = rng.sample(
        list(genre.instruments), rng.randint(2, min(4, len(genre.instruments)))
    )
    vocals = rng.random() < VOCALS_PROBABILITY
    lyrics = _lyrics(rng) if vocals else None
    # Whole seconds keep the space simple to reason about; bounds come from the settings.
    duration = float(rng.randint(int(round(min_seconds)), int(round(max_seconds))))
    template = rng.choice(_PROMPT_TEMPLATES)
    prompt = template.format(
        mood=mood,
        Mood=mood.capitalize(),
        genre=genre.name,
        Genre=genre.name.capitalize(),
        tempo=tempo,
        key=key,
        instruments=_join(instruments),
        vocals=f" and {rng.choice(('female', 'male'))} vocals" if vocals else "",
    )
    return MusicGenerationSynapse(
        challenge_id=challenge_id_from_seed(seed),
        prompt=prompt,
        genre=genre.name,
        mood=mood,
        tempo_bpm=tempo,
        key=key,
        instruments=instruments,
        vocals=vocals,
        lyrics=lyrics,
        duration_seconds=duration,
        seed=synapse_seed(seed),
    )
