"""Structured request fields -> one text prompt of the kind MusicGen was trained on.

MusicGen's captions read like "lo-fi hip hop, calm mood, 85 BPM, in A minor, with piano and
drums. Chill beat with vinyl crackle": tags first, then the free text.
"""

from __future__ import annotations

from tuneforge.core.protocol import MusicGenerationSynapse

# Text encoders truncate; keep the whole prompt well inside T5's 512 tokens.
MAX_PROMPT_CHARS = 900


def _join_instruments(instruments: list[str]) -> str:
    if len(instruments) == 1:
        return instruments[0]
    return ", ".join(instruments[:-1]) + " and " + instruments[-1]


def build_prompt(request: MusicGenerationSynapse) -> str:
    """One prompt from the genre, mood, tempo, key, instruments, vocals and free text."""
    tags: list[str] = []
    if request.genre:
        tags.append(request.genre)
    if request.mood:
        tags.append(f"{request.mood} mood")
    if request.tempo_bpm is not None:
        tags.append(f"{request.tempo_bpm} BPM")
    if request.key:
        tags.append(f"in {request.key}")
    if request.instruments:
        tags.append("with " + _join_instruments(request.instruments))
    # MusicGen does not sing words: lyrics are not passed on, only that the track has vocals
    # (it may then produce vocal-like timbres). ACE-Step reads `request.lyrics` itself.
    if request.vocals:
        tags.append("with vocals")
    text = request.prompt.strip()
    if not tags:
        return text[:MAX_PROMPT_CHARS]
    head = ", ".join(tags)
    if not text:
        return head[:MAX_PROMPT_CHARS]
    if not text.endswith((".", "!", "?")):
        text += "."
    return f"{head}. {text[0].upper()}{text[1:]}"[:MAX_PROMPT_CHARS]


def build_caption(request: MusicGenerationSynapse) -> str:
    """ACE-Step's caption: style tags and the free text. Tempo and key are not repeated here;
    the backend passes them through the pipeline's own `bpm` / `keyscale` metadata."""
    tags = [part for part in (request.genre, request.mood and f"{request.mood} mood") if part]
    tags.extend(request.instruments)
    tags.append("vocals" if request.vocals else "instrumental")
    text = request.prompt.strip()
    return f"{', '.join(tags)}. {text}"[:MAX_PROMPT_CHARS]
