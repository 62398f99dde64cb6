"""Tiny valid audio files for tests, without ffmpeg."""

from pathlib import Path

# MPEG-1 Layer III, 32 kbit/s, 48 kHz, mono, no CRC: every frame is exactly 96 bytes and
# 1152 samples (24 ms), so mutagen's CBR length estimate is exact.
_FRAME_HEADER = bytes([0xFF, 0xFB, 0x14, 0xC0])
_FRAME_BYTES = 96
_FRAME_SECONDS = 1152 / 48000


def write_test_mp3(path: Path, seconds: float) -> Path:
    """A silent MP3 stream (zero side info and payload) that mutagen reads as `seconds` long."""
    frames = max(1, round(seconds / _FRAME_SECONDS))
    frame = _FRAME_HEADER + bytes(_FRAME_BYTES - len(_FRAME_HEADER))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(frame * frames)
    return path
