"""How a query can fail: stable codes (they are stored, shown by `validator status` and
published) and the mapping from the WAV decoder's errors to them."""

from __future__ import annotations

from tuneforge.core.audio import AudioError

# Failure codes (stable strings: they are stored, shown by `validator status` and published).
TIMEOUT = "timeout"
CONNECT_ERROR = "connect_error"
HTTP_STATUS = "http_status"
EMPTY_BODY = "empty_body"
NOT_WAV = "not_wav"
TRUNCATED = "truncated"
NOT_FINITE = "not_finite"
OUT_OF_RANGE = "out_of_range"
TOO_LONG = "too_long"
TOO_LARGE = "too_large"
BAD_AUDIO = "bad_audio"
MISSING_SIGNATURE = "missing_signature"
BAD_SIGNATURE = "bad_signature"
WRONG_SIGNER = "wrong_signer"
BAD_ENCODING = "bad_encoding"
NO_AXON = "no_axon"
BAD_SLOT = "bad_slot"


def classify_audio_error(exc: AudioError) -> str:
    """Map tuneforge.core.audio's decoding errors to stable failure codes."""
    message = str(exc)
    if message.startswith("empty audio body"):
        return EMPTY_BODY
    if message.startswith("not a RIFF/WAVE"):
        return NOT_WAV
    if message.startswith("truncated WAV"):
        return TRUNCATED
    if "NaN" in message or "infinite" in message:
        return NOT_FINITE
    if message.startswith("sample values out of range"):
        return OUT_OF_RANGE
    if message.startswith("audio is") and "limit is" in message and " s," in message:
        return TOO_LONG
    if message.startswith("audio is") and "bytes" in message:
        return TOO_LARGE
    return BAD_AUDIO
