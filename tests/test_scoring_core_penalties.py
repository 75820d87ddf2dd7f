"""Penalties: duration, artifacts (incl. shift-invariant loops) and fingerprint copies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from tests.helpers import signals
from tuneforge.core.audio import Audio
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.fingerprint import fingerprint
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.penalties import (
    ArtifactPenalty,
    DurationPenalty,
    FingerprintPenalty,
    backwards_multiplier,
)

CHALLENGE = MusicGenerationSynapse(prompt="test", duration_seconds=12)


@pytest.fixture(scope="module")
def piece() -> Audio:
    return signals.tonal_piece("A minor", tempo_bpm=100, seconds=12)


def _context(clips: list[Clip], history: InMemoryHistory | None = None) -> RoundContext:
    hotkeys = [f"miner{i}" for i in range(len(clips))]
    return RoundContext(clips, hotkeys, [None] * len(clips), history or InMemoryHistory())


def _artifact(audio: Audio) -> tuple[float, str, dict]:
    clip = Clip(audio)
    result = ArtifactPenalty().run(clip, CHALLENGE, _context([clip]), 0)
    return result.value, result.reason, result.details


def test_duration_penalty_follows_the_curve(piece: Audio) -> None:
    full = Clip(piece)
    assert DurationPenalty().run(full, CHALLENGE, _context([full]), 0).value == 1.0
    short = Clip(signals.shifted(piece, 3.0))  # 9 s of 12 s: 25% off
    result = DurationPenalty().run(short, CHALLENGE, _context([short]), 0)
    assert result.value == pytest.approx(1 - (0.25 - 0.05) / 0.45, abs=0.01)
    assert "requested" in result.reason


def test_clean_music_has_no_artifacts(piece: Audio) -> None:
    value, reason, details = _artifact(signals.in_room(piece))
    assert value == 1.0 and reason == ""
    assert details["loop_correlation"] < 0.9


def test_dry_notes_that_stop_dead_are_an_artifact(piece: Audio) -> None:
    room, dry = _artifact(signals.in_room(piece)), _artifact(piece)
    assert dry[0] < room[0] == 1.0
    assert "stop dead" in dry[1]


def test_bars_pasted_sample_for_sample_under_a_lead_are_a_loop() -> None:
    """One bar pasted five times under a lead line that never repeats: ~85 % of the energy
    comes back sample-for-sample (r ~0.85), which no played or rendered take does (real clips
    of the tuning half: at most 0.71)."""
    sr = 32_000
    bed = signals.in_room(signals.tonal_piece("A minor", 100, seconds=12, seed=0))
    bar = bed.samples[0, 2 * sr : 2 * sr + int(2.4 * sr)]  # one 4/4 bar at 100 BPM
    pasted = np.tile(bar, 5)[: 12 * sr]
    lead = signals.in_room(signals.melody("A minor", 100, 12, sr, seed=3)).samples[0]
    mix = pasted / np.std(pasted) + 0.5 * lead / np.std(lead)
    value, reason, details = _artifact(Audio((0.5 * mix / np.abs(mix).max())[None, :], sr))
    assert 0.8 < details["loop_correlation"] < 0.9
    assert value < 0.9 and "repeats itself" in reason


def test_more_swells_than_decays_costs_something_from_zero_skew() -> None:
    """Real takes skew positive (tuning half: 0.07-5.4, legato strings lowest); reversed legato
    strings and organ sit just under 0 and used to pass untouched (the penalty began at -0.3)."""
    assert backwards_multiplier(0.07) == 1.0
    assert 0.9 < backwards_multiplier(-0.15) < 0.98
    assert backwards_multiplier(-1.5) == pytest.approx(0.5)


def _held_chords_cut_at_phrase_ends(seconds: float = 12.0, sr: int = 32_000) -> Audio:
    """Brass-like held triads, 2 s each, each cut within 10 ms and followed by a 0.4 s rest:
    few, very sharp falls over a steady texture (a high decay peakiness)."""
    out = np.zeros(int(seconds * sr))
    triads = ((57, 60, 64), (53, 57, 60), (52, 55, 59))
    held = np.arange(int(2.0 * sr)) / sr
    envelope = np.minimum(1.0, held / 0.03) * np.minimum(1.0, (held[-1] - held) / 0.01)
    for number, start in enumerate(np.arange(0.0, seconds, 2.4)):
        tone = sum(
            np.sin(2 * np.pi * signals.midi_to_hz(m) * h * held) / h
            for m in triads[number % 3]
            for h in range(1, 6)
        )
        at = int(start * sr)
        end = min(len(out), at + len(held))
        out[at:end] += (tone * envelope)[: end - at]
    return Audio((0.2 * out / np.abs(out).max())[None, :].astype(np.float32), sr)


def test_a_sharp_stop_that_keeps_decaying_in_the_room_is_a_release_not_a_dead_stop() -> None:
    """Staccato brass in a small room: the note stops sharply but its reverberation goes on
    decaying, so it is no artifact; the same notes dry stop dead and still cost (D45)."""
    dry = _held_chords_cut_at_phrase_ends()
    value, reason, details = _artifact(signals.in_room(dry, rt60_s=0.3, wet=0.2))
    assert details["decay_peakiness"] > 30.0  # the falls alone look like dead stops
    assert details["release_tail_db"] > 8.0
    assert value == 1.0 and reason == ""
    value, reason, details = _artifact(dry)
    assert details["release_tail_db"] < 5.0
    assert value <= 0.41 and "stop dead" in reason


def test_clipping_is_found_at_whatever_level_the_clipped_signal_ends_up() -> None:
    clean = signals.in_room(signals.tonal_piece("A minor", tempo_bpm=100, seconds=8))
    quiet_clipped = signals.scaled(signals.clipped(clean, drive=4.0), 0.3)  # flat tops at 0.3
    value, reason, details = _artifact(quiet_clipped)
    assert details["clipped_fraction"] > 0.01
    assert value < 0.9 and "clipping" in reason
    assert _artifact(signals.scaled(clean, 0.3))[2]["clipped_fraction"] == 0.0


def test_drum_hits_are_not_clicks_but_impulses_in_silence_are() -> None:
    drums = signals.in_room(signals.drum_pattern(tempo_bpm=120, seconds=8))
    assert _artifact(drums)[2]["clicks"] == 0
    impulses = np.zeros(8 * 32_000, dtype=np.float32)
    impulses[:: 32_000 // 4] = 0.8  # four clicks a second
    value, reason, details = _artifact(Audio(impulses, 32_000))
    assert details["clicks"] >= 30 and "clicks" in reason


def test_silence_and_steady_noise_are_zeroed_with_reasons() -> None:
    value, reason, _ = _artifact(signals.silence(5))
    assert value == 0.0 and "silent" in reason
    value, reason, _ = _artifact(signals.white_noise(5))
    assert value == 0.0 and "noise" in reason
    value, reason, _ = _artifact(Audio(np.full(32000, -0.4, dtype=np.float32), 32000))
    assert value == 0.0 and "DC" in reason


def test_hard_clipping_is_penalised(piece: Audio) -> None:
    value, reason, details = _artifact(signals.clipped(piece, 8))
    assert value < 0.5 and "clipping" in reason and details["clipped_fraction"] > 0.05


def test_a_loop_shifted_by_a_non_round_number_of_samples_is_caught(piece: Audio) -> None:
    loop = signals.looped(piece, loop_seconds=2.4, total_seconds=14, offset_s=3.3)
    value, reason, details = _artifact(signals.shifted(loop, 0.371313))  # 11882.0 samples
    assert value <= 0.25 and "repeats itself every 2.40 s" in reason
    noisy_loop = signals.with_noise(signals.shifted(loop, 1.777), snr_db=25)
    value, reason, _ = _artifact(noisy_loop)
    assert value < 0.5 and "repeats" in reason


def test_clicks_and_spectral_holes_are_found(piece: Audio) -> None:
    # Clicks well above the music (the detector asks for 300x the clip's mean impulsive level:
    # bright drums alone must never count).
    clicked = signals.in_room(piece).samples * 0.2
    clicked[0, :: piece.sample_rate // 4] = 0.95  # a spike every 0.25 s
    value, reason, details = _artifact(Audio(clicked, piece.sample_rate))
    assert value < 0.7 and details["clicks"] >= 10 and "clicks" in reason, details["clicks"]
    notch = butter(6, [2000, 3000], "bandstop", fs=32000, output="sos")
    notched = Audio(sosfilt(notch, piece.samples).astype(np.float32), 32000)
    value, reason, details = _artifact(notched)
    assert value < 1.0 and "spectral hole" in reason
    low, high = details["spectral_holes_hz"][0]
    assert 1900 < low < high < 3100


def test_near_copy_shifted_and_rescaled_is_caught_in_the_round_and_from_history(
    piece: Audio,
) -> None:
    copy = signals.scaled(signals.with_noise(signals.shifted(piece, 1.3), 30), 0.6)
    different = signals.tonal_piece("E major", tempo_bpm=128, seconds=12, seed=9)
    clips = [Clip(piece), Clip(copy), Clip(different)]
    context = _context(clips)
    penalty = FingerprintPenalty()
    results = [penalty.run(c, CHALLENGE, context, i) for i, c in enumerate(clips)]
    assert [r.value for r in results] == [0.0, 0.0, 1.0]
    assert "miner1" in results[0].reason and "miner0" in results[1].reason

    history = InMemoryHistory()
    history.add_fingerprint("old-miner", fingerprint(Clip(piece)))
    later = Clip(copy)
    result = penalty.run(later, CHALLENGE, _context([later], history), 0)
    assert result.value == 0.0 and "old-miner" in result.reason
    fresh = Clip(different)
    assert penalty.run(fresh, CHALLENGE, _context([fresh], history), 0).value == 1.0
