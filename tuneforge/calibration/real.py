"""The real half of the calibration set: fadtk's real generated clips and public-domain scores
from music21's corpus rendered with a General MIDI soundfont.

Each `RealPiece` carries the challenge it answers (genre, mood, tempo, key, instruments,
duration) and, for renders, its true key, tempo and bar length. Downloads and renders are cached
under `cache_dir()`; a source that cannot be had raises `CalibrationUnavailable` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.calibration.midi import DRUM_CHANNEL, NoteEvent, write_smf
from tuneforge.core.audio import COMMON_RATE, Audio, normalize_loudness
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import MusicGenerationSynapse

CACHE_ENV = "TUNEFORGE_CALIBRATION_CACHE"
FADTK_VERSION = "1.1.0"
FADTK_WHEEL = f"fadtk-{FADTK_VERSION}-py3-none-any.whl"
FADTK_SHA256 = "69002a10478a82bb7452521c0d8a4fbaefd6eb423f991edac5c26d9ad5628adc"
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
RENDER_RATE = COMMON_RATE
TARGET_LUFS = -14.0  # every clip of the set, real or fake, is delivered at this loudness
RENDER_VERSION = "r2"  # part of the cache key: bump when rendering changes


class CalibrationUnavailable(TuneForgeError, RuntimeError):
    """A calibration source (fadtk wheel, fluidsynth, soundfont, music21) cannot be had."""

    status = 503
    code = "calibration_unavailable"


@dataclass(frozen=True)
class RealPiece:
    piece_id: str
    source: str  # "fadtk:<generator>" or "render:<instrumentation>"
    audio: Audio
    challenge: MusicGenerationSynapse
    split: str  # "tune" or "heldout", by piece
    true_key: str | None = None  # renders only
    key_certain: bool = False  # the key signature and the notes name the same key
    true_tempo_bpm: float | None = None
    bar_seconds: float | None = None


def cache_dir(override: str | Path | None = None) -> Path:
    """`override`, else $TUNEFORGE_CALIBRATION_CACHE, else ~/.cache/tuneforge/calibration."""
    chosen = override or os.environ.get(CACHE_ENV) or Path.home() / ".cache/tuneforge/calibration"
    path = Path(chosen).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def split_of(piece_id: str) -> str:
    """A stable half/half split by piece: every render of one score lands on the same side."""
    return "heldout" if hashlib.sha1(piece_id.encode()).digest()[0] % 2 else "tune"


def _finish(samples: np.ndarray, rate: int) -> Audio:
    """Loudness-normalised float32 audio [channels, n]."""
    return normalize_loudness(Audio(np.asarray(samples, dtype=np.float32), rate), TARGET_LUFS)


# ------------------------------------------------------------------------------ fadtk clips


def fadtk_wheel(cache: Path, download: bool = True) -> Path:
    """The fadtk wheel (checked by sha256), downloaded with pip into the cache once."""
    wheel = cache / FADTK_WHEEL
    if not wheel.is_file() and download:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                 f"fadtk=={FADTK_VERSION}", "-d", str(cache)],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as error:
            reason = f"cannot download fadtk {FADTK_VERSION}: {error}"
            raise CalibrationUnavailable(reason) from error
    if not wheel.is_file():
        raise CalibrationUnavailable(f"fadtk wheel not in {cache}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != FADTK_SHA256:
        raise CalibrationUnavailable(f"{wheel} has sha256 {digest}, expected {FADTK_SHA256}")
    return wheel


FADTK_GENERATORS = {"mg": "MusicGen", "mlm": "MusicLM", "mubert": "Mubert"}


def fadtk_pieces(cache: Path, download: bool = True) -> list[RealPiece]:
    """fadtk's 23 real 10 s generations, read out of its wheel (the package is never imported).
    Their prompts are unknown, so their challenges ask for no key or tempo."""
    import soundfile

    wheel = fadtk_wheel(cache, download)
    pieces = []
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("fadtk/test/samples/"))
        for name in names:
            stem = Path(name).stem  # e.g. mg-1634
            generator = FADTK_GENERATORS.get(stem.split("-")[0], "unknown")
            with archive.open(name) as handle:
                samples, rate = soundfile.read(handle, dtype="float32", always_2d=True)
            audio = _finish(samples.T, rate)
            challenge = MusicGenerationSynapse(
                prompt=f"music in the style of a {generator} generation",
                duration_seconds=round(audio.duration_seconds, 2),
                seed=int(hashlib.sha1(stem.encode()).hexdigest()[:7], 16),
            )
            piece_id = f"fadtk-{stem}"
            pieces.append(
                RealPiece(piece_id, f"fadtk:{generator}", audio, challenge, split_of(piece_id))
            )
    return pieces


# ------------------------------------------------------------------------------ renders


@dataclass(frozen=True)
class Instrumentation:
    name: str
    genre: str
    instruments: tuple[str, ...]
    programs: tuple[int, ...]  # GM program per part, top part first; the last repeats
    drums: bool = False


INSTRUMENTATIONS = (
    Instrumentation("piano", "classical", ("piano",), (0,)),
    Instrumentation("strings", "classical", ("violin", "viola", "cello"), (40, 40, 41, 42)),
    Instrumentation("organ", "classical", ("organ",), (19,)),
    Instrumentation("brass", "classical", ("trumpet", "french horn", "trombone", "tuba"),
                    (56, 60, 57, 58)),
    Instrumentation("woodwinds", "classical", ("flute", "oboe", "clarinet", "bassoon"),
                    (73, 68, 71, 70)),
    Instrumentation("folk band", "folk", ("acoustic guitar", "bass guitar", "drums"),
                    (24, 25, 25, 32), drums=True),
    Instrumentation("pop band", "pop", ("electric piano", "strings", "bass guitar", "drums"),
                    (4, 48, 48, 33), drums=True),
    Instrumentation("harp and cello", "classical", ("harp", "cello"), (46, 46, 46, 42)),
)  # fmt: skip
TEMPI = (66, 76, 88, 100, 112, 126)
TRANSPOSITIONS = (-5, -3, -2, 0, 0, 2, 3, 5)
RENDER_SECONDS = 15.0  # excerpt target: whole bars of at most this much music
RELEASE_SECONDS = 1.0  # the last notes ring out this long after the final bar


def corpus_scores() -> list[str]:
    """Polyphonic public-domain scores from music21's corpus (relative corpus paths): a spread of
    Bach chorales plus string quartets, piano and chamber pieces. Harmony must be present in
    the score itself: monophonic tunes are left out."""
    try:
        from music21 import corpus
    except ImportError as error:
        raise CalibrationUnavailable(f"music21 not installed: {error}") from error
    base = Path(corpus.__file__).parent
    chorales = sorted(str(p.relative_to(base)) for p in corpus.getComposer("bach"))
    chorales = [p for p in chorales if p.endswith(".mxl")][::12]
    others = []
    for composer in ("beethoven", "mozart", "haydn", "joplin", "corelli", "schubert", "cpebach",
                     "handel"):  # fmt: skip
        others += sorted(str(p.relative_to(base)) for p in corpus.getComposer(composer))
    others = [p for p in others if p.endswith((".mxl", ".xml"))]
    return chorales + others


def _choose(options: tuple, piece_id: str, salt: str) -> object:
    digest = hashlib.sha1(f"{salt}:{piece_id}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def soundfont() -> Path:
    for candidate in SOUNDFONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise CalibrationUnavailable("no General MIDI soundfont (apt install fluid-soundfont-gm)")


def fluidsynth_binary() -> str:
    found = shutil.which("fluidsynth")
    if not found:
        raise CalibrationUnavailable("fluidsynth not installed (apt install fluidsynth)")
    return found


@dataclass(frozen=True)
class ScoreExcerpt:
    events: list[NoteEvent]
    beats: float  # excerpt length in quarter notes
    bar_beats: float
    key: str  # true key of the excerpt (before transposition), e.g. "A minor"
    key_certain: bool  # the signature-bound key is also the notes' own best key


def _excerpt(path: str, tempo_bpm: float, instrumentation: Instrumentation) -> ScoreExcerpt:
    """Whole bars of the score's opening that fit in RENDER_SECONDS, as note events."""
    from music21 import corpus, meter

    score = corpus.parse(path)
    if not hasattr(score, "parts") or len(score.parts) < 2:
        raise ValueError(f"{path}: not a multi-part score")
    signatures = list(score.parts[0].recurse().getElementsByClass(meter.TimeSignature))
    bar_beats = float(signatures[0].barDuration.quarterLength) if signatures else 4.0
    beat_seconds = 60.0 / tempo_bpm
    bars = max(2, int(RENDER_SECONDS // (bar_beats * beat_seconds)))
    first = score.parts[0].getElementsByClass("Measure")
    start = int(first[0].number) if len(first) else 1
    pickup = 0.0
    if len(first) and first[0].duration.quarterLength < bar_beats - 1e-6:
        pickup = float(first[0].duration.quarterLength)  # anacrusis: its bar is not whole
    excerpt = score.measures(start, start + bars - (0 if pickup else 1))
    beats = bars * bar_beats + pickup
    events: list[NoteEvent] = []
    parts = list(excerpt.parts)
    for index, part in enumerate(parts):
        program_index = min(index, len(instrumentation.programs) - 1)
        channel = program_index if program_index < DRUM_CHANNEL else program_index + 1
        for element in part.stripTies().flatten().notes:
            offset = float(element.getOffsetInHierarchy(part))
            length = float(element.duration.quarterLength)
            if offset >= beats or length <= 0:
                continue
            velocity = element.volume.velocity or 84
            for pitch in element.pitches:
                events.append(
                    NoteEvent(offset, min(length, beats - offset), int(pitch.midi), velocity,
                              channel)
                )  # fmt: skip
    if not events:
        raise ValueError(f"{path}: no notes in the opening")
    return ScoreExcerpt(events, beats, bar_beats, *_true_key(excerpt))


def _true_key(excerpt: object) -> tuple[str, bool]:
    """(key, certain): of the two keys the excerpt's key signature allows (major and relative
    minor), the one music21's symbolic key finder rates higher; certain when that is also the
    finder's own first choice. Slow introductions and movements that open away from the home
    key (a finale opening on VI) are not certain: key accuracy is only counted where it is."""
    from music21 import key as m21key

    analysed = excerpt.analyze("key")
    own = _key_name(analysed.tonic.pitchClass, analysed.mode == "minor")
    signatures = list(excerpt.recurse().getElementsByClass(m21key.KeySignature))
    candidates = [analysed, *analysed.alternateInterpretations]
    if signatures:
        sharps = signatures[0].sharps
        allowed = [k for k in candidates if k.sharps == sharps]
        if allowed:
            best = max(allowed, key=lambda k: k.correlationCoefficient)
            chosen = _key_name(best.tonic.pitchClass, best.mode == "minor")
            return chosen, chosen == own
    return own, False


def _key_name(pitch_class: int, minor: bool) -> str:
    from tuneforge.scoring.keys import KEY_NAMES

    return f"{KEY_NAMES[pitch_class % 12]} {'minor' if minor else 'major'}"


def _drum_events(beats: float, bar_beats: float) -> list[NoteEvent]:
    """A plain kit part on the bar grid: kick on 1 (and 3), snare on the backbeats, closed hi-hat
    eighths (GM notes 36, 38, 42)."""
    events = []
    n_eighths = int(beats * 2)
    for i in range(n_eighths):
        at = i / 2.0
        in_bar = at % bar_beats
        events.append(NoteEvent(at, 0.25, 42, 70 if i % 2 == 0 else 52, DRUM_CHANNEL))
        if in_bar == 0 or (bar_beats == 4 and in_bar == 2):
            events.append(NoteEvent(at, 0.25, 36, 100, DRUM_CHANNEL))
        if in_bar in ((1.0, 3.0) if bar_beats == 4 else (1.0, 2.0) if bar_beats == 3 else (1.0,)):
            events.append(NoteEvent(at, 0.25, 38, 90, DRUM_CHANNEL))
    return events


def render_piece(path: str, cache: Path) -> RealPiece:
    """Render one corpus score (instrumentation, tempo and transposition chosen by its id),
    cached as WAV plus a small label file."""
    import soundfile

    piece_id = "m21-" + path.replace("/", "-").rsplit(".", 1)[0]
    instrumentation = _choose(INSTRUMENTATIONS, piece_id, "instrumentation")
    tempo = float(_choose(TEMPI, piece_id, "tempo"))
    shift = int(_choose(TRANSPOSITIONS, piece_id, "transpose"))
    wav = cache / "renders" / f"{piece_id}.{RENDER_VERSION}.wav"
    label = wav.with_suffix(".txt")
    if not (wav.is_file() and label.is_file()):
        excerpt = _excerpt(path, tempo, instrumentation)
        events = [
            NoteEvent(e.start_beats, e.length_beats, e.pitch + shift, e.velocity, e.channel)
            for e in excerpt.events
        ]
        if instrumentation.drums:
            events += _drum_events(excerpt.beats, excerpt.bar_beats)
        programs = {}
        for index, program in enumerate(instrumentation.programs):
            channel = index if index < DRUM_CHANNEL else index + 1
            programs[channel] = program
        from tuneforge.scoring.keys import parse_key

        original = parse_key(excerpt.key)
        true_key = _key_name(original.tonic + shift, original.minor)
        seconds = excerpt.beats * 60.0 / tempo
        _fluidsynth(write_smf(events, tempo, programs), wav, seconds + RELEASE_SECONDS)
        certain = "certain" if excerpt.key_certain else "uncertain"
        label.write_text(f"{true_key}\n{tempo}\n{excerpt.bar_beats * 60.0 / tempo}\n{certain}\n")
    true_key, tempo_text, bar_text, certain = label.read_text().split("\n")[:4]
    samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    audio = _finish(samples.T, rate)
    minor = true_key.endswith("minor")
    challenge = MusicGenerationSynapse(
        prompt=f"{instrumentation.name} piece, {'melancholic' if minor else 'uplifting'}",
        genre=instrumentation.genre,
        mood="melancholic" if minor else "uplifting",
        tempo_bpm=int(round(float(tempo_text))),
        key=true_key,
        instruments=list(instrumentation.instruments),
        duration_seconds=round(audio.duration_seconds, 2),
        seed=int(hashlib.sha1(piece_id.encode()).hexdigest()[:7], 16),
    )
    return RealPiece(
        piece_id,
        f"render:{instrumentation.name}",
        audio,
        challenge,
        split_of(piece_id),
        true_key=true_key,
        key_certain=certain == "certain",
        true_tempo_bpm=float(tempo_text),
        bar_seconds=float(bar_text),
    )


def _fluidsynth(midi: bytes, wav: Path, seconds: float) -> None:
    """Render SMF bytes to a 32 kHz stereo WAV of exactly `seconds` (reverb/chorus as shipped)."""
    import soundfile

    wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        mid, raw = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        try:
            subprocess.run(
                [fluidsynth_binary(), "-ni", "-g", "0.5", "-r", str(RENDER_RATE), "-F", str(raw),
                 str(soundfont()), str(mid)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as error:
            raise CalibrationUnavailable(f"fluidsynth failed: {error}") from error
        samples, rate = soundfile.read(raw, dtype="float32", always_2d=True)
    n = int(round(seconds * rate))
    samples = samples[:n]
    if len(samples) < n:
        samples = np.concatenate([samples, np.zeros((n - len(samples), samples.shape[1]))])
    fade = int(0.3 * rate)  # the release tail fades out instead of being cut
    samples[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None] ** 2
    # Written beside and renamed: two processes warming one cache must never leave a torn WAV.
    partial = wav.with_name(f"{wav.stem}.{os.getpid()}.partial.wav")
    soundfile.write(partial, samples.astype(np.float32), rate, subtype="PCM_16")
    os.replace(partial, wav)


def rendered_pieces(cache: Path, limit: int | None = None) -> list[RealPiece]:
    """Renders of `corpus_scores()` (the first `limit`); scores music21 cannot cut are skipped."""
    fluidsynth_binary()
    soundfont()
    pieces = []
    for path in corpus_scores()[:limit]:
        try:
            pieces.append(render_piece(path, cache))
        except CalibrationUnavailable:
            raise
        except Exception as error:  # a corpus file music21 cannot cut into bars: skip it
            print(f"skipping {path}: {type(error).__name__}: {error}", file=sys.stderr)
    return pieces
