"""A minimal Standard MIDI File writer: note events in, type-0 SMF bytes out.

Written here rather than through music21's exporter so tempo, programs, channels and the drum
track are exactly what the calibration set says they are (the render's true tempo is a label)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9  # General MIDI percussion


@dataclass(frozen=True)
class NoteEvent:
    start_beats: float  # quarter notes from the start
    length_beats: float
    pitch: int  # MIDI note number (a GM drum sound on the drum channel)
    velocity: int
    channel: int


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_smf(events: list[NoteEvent], tempo_bpm: float, programs: dict[int, int]) -> bytes:
    """Type-0 SMF: one tempo, one program per channel (`programs`: channel -> GM program)."""
    timed: list[tuple[int, int, bytes]] = []  # (tick, order, message): note-offs before note-ons
    micros = int(round(60_000_000 / tempo_bpm))
    timed.append((0, 0, b"\xff\x51\x03" + micros.to_bytes(3, "big")))
    for channel, program in sorted(programs.items()):
        timed.append((0, 1, bytes([0xC0 | channel, program & 0x7F])))
    for e in events:
        if not 0 <= e.pitch <= 127 or e.length_beats <= 0:
            continue
        on = int(round(e.start_beats * TICKS_PER_BEAT))
        off = max(on + 1, int(round((e.start_beats + e.length_beats) * TICKS_PER_BEAT)))
        velocity = max(1, min(127, e.velocity))
        timed.append((on, 3, bytes([0x90 | e.channel, e.pitch, velocity])))
        timed.append((off, 2, bytes([0x80 | e.channel, e.pitch, 0])))
    timed.sort(key=lambda item: (item[0], item[1]))
    track = bytearray()
    last = 0
    for tick, _, message in timed:
        track += _varlen(tick - last) + message
        last = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)
