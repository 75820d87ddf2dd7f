"""Download formats of stored WAVs: converted on first request, cached beside the store.

FLAC and MP3 are written by soundfile (libsndfile >= 1.1 encodes MP3 through LAME; the check
below says so when a build lacks it). A conversion is written to a temporary file and renamed,
so concurrent first requests each produce a complete file and readers never see half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import soundfile as sf

from tuneforge.api.storage import AudioStore, AudioStoreError
from tuneforge.core.errors import TuneForgeError

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
_WRITE = {"flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}
FILE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}\.(wav|flac|mp3)$"


class FormatUnavailable(TuneForgeError):
    """This server's libsndfile cannot write the format."""

    status = 415
    code = "format_unavailable"


def split_file_name(name: str) -> tuple[str, str]:
    """("trk_…", "flac") from "trk_….flac" (the route's pattern has already checked it)."""
    track_id, _, extension = name.rpartition(".")
    return track_id, extension


def audio_file(store: AudioStore, sha256: str, fmt: str) -> Path:
    """Path of the stored audio in `fmt`, converting (once) when it is not cached yet."""
    source = store.path_of(sha256)
    if not source.is_file():
        raise AudioStoreError("audio not stored")
    if fmt == "wav":
        return source
    target = store.root / "converted" / sha256[:2] / f"{sha256}.{fmt}"
    if target.is_file():
        return target
    major, subtype = _WRITE[fmt]
    if major not in sf.available_formats():
        raise FormatUnavailable(f"{fmt} encoding is not available on this server")
    data, rate = sf.read(source, dtype="float32", always_2d=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".convert-", suffix=f".{fmt}")
    os.close(fd)
    try:
        sf.write(tmp_name, data, rate, format=major, subtype=subtype)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
