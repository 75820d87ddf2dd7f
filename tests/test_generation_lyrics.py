"""The lyrics writer: a tiny random Qwen3 loaded from disk (plumbing), cleaning, and fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_singing import build_tiny_qwen3, offline_and_threads  # noqa: F401
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.lyrics import (
    MAX_LINE_CHARS,
    LyricsWriter,
    clean_lyrics,
    fallback_lyrics,
    line_budget,
)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


def _request(seconds: float = 12.0) -> MusicGenerationSynapse:
    return MusicGenerationSynapse(
        prompt="summer nights by the sea", genre="pop", mood="happy", vocals=True,
        duration_seconds=seconds, seed=1,
    )  # fmt: skip


def _sung_lines(lyrics: str) -> list[str]:
    return [line for line in lyrics.splitlines() if not line.startswith("[")]


def test_writer_loads_a_chat_model_from_a_folder_and_samples_by_seed(qwen_dir: Path) -> None:
    writer = LyricsWriter(str(qwen_dir))
    assert writer.load() and writer.available
    instruction = "Write lyrics about the sea"
    first = writer._generate_locked(instruction, 4, seed=5)
    assert first and first == writer._generate_locked(instruction, 4, seed=5)
    assert first != writer._generate_locked(instruction, 4, seed=6)
    lyrics = writer.write(_request(), seed=5)  # random weights: cleaned output or the fallback
    assert lyrics.startswith("[verse]\n")
    assert 2 <= len(_sung_lines(lyrics)) <= line_budget(12.0)


def test_cleaning_keeps_sung_lines_under_known_section_tags() -> None:
    raw = (
        "<think>\nthe user wants a song\n</think>\n"
        "Here are the lyrics for your song:\n"
        "Title: Summer Nights\n\n"
        "**Verse 1:**\n"
        "1. Walking by the water in the evening glow\n"
        "2) Every wave is whispering the things we know\n"
        "[Guitar Solo]\n"
        "(Chorus)\n"
        "- Summer nights, oh summer nights!\n"
        "* We will dance until the morning light 🎶\n"
        "## Bridge\n"
        + "and the song goes on and on and on and on and on and on and on forever more\n"
        "I hope you enjoy these lyrics!\n"
    )
    assert clean_lyrics(raw, max_lines=8) == (
        "[verse]\n"
        "Walking by the water in the evening glow\n"
        "Every wave is whispering the things we know\n"
        "[chorus]\n"
        "Summer nights, oh summer nights!\n"
        "We will dance until the morning light\n"
        "[bridge]\n"
        "and the song goes on and on and on and"
    )


def test_cleaning_bounds_lines_and_rejects_what_cannot_be_sung() -> None:
    many = "\n".join(f"line number {i} of the song" for i in range(50))
    cleaned = clean_lyrics(many, max_lines=6)
    assert len(_sung_lines(cleaned)) == 6 and cleaned.startswith("[verse]\n")
    long_word = "x" * 200 + " y" * 3
    assert all(len(line) <= MAX_LINE_CHARS for line in _sung_lines(clean_lyrics(long_word, 4)))
    assert clean_lyrics("Sure! Here you go:\n[Chorus]\n\n", 8) == ""
    assert clean_lyrics("<think>only thinking, never closed", 8) == ""


def test_line_budget_follows_duration() -> None:
    assert line_budget(1.0) == 4
    assert line_budget(30.0) == 10
    assert line_budget(600.0) == 24


def test_missing_model_falls_back_to_fixed_lyrics_and_is_not_retried(tmp_path: Path) -> None:
    writer = LyricsWriter(str(tmp_path / "absent"))
    assert writer.write(_request(), seed=1) == fallback_lyrics(12.0)
    assert not writer.load()  # failed once: later requests do not pay for another attempt
    assert LyricsWriter("").write(_request(30.0), seed=1) == fallback_lyrics(30.0)


def test_failing_model_falls_back_to_fixed_lyrics(qwen_dir: Path) -> None:
    class _Broken(LyricsWriter):
        def _generate_locked(self, instruction: str, lines: int, seed: int) -> str:
            raise RuntimeError("probability tensor contains nan")

    assert _Broken(str(qwen_dir)).write(_request(), seed=1) == fallback_lyrics(12.0)


def test_fallback_fits_the_clip() -> None:
    short, long = fallback_lyrics(6.0), fallback_lyrics(60.0)
    assert len(_sung_lines(short)) == 4 and len(_sung_lines(long)) == 16
    assert short.startswith("[verse]\n") and "[chorus]" in long
