"""One logging set-up for every long-running role: loguru to stderr, optionally rotating files."""

from __future__ import annotations

import sys

from loguru import logger

from tuneforge.core.config import LoggingSettings, expand_path


def configure_logging(settings: LoggingSettings, filename: str) -> None:
    """stderr at the configured level; with `logging_dir`, also `<dir>/<filename>` rotated at
    50 MB with five kept (pm2 keeps its own copy of stderr; the files survive `pm2 flush`)."""
    level = settings.level.upper()
    logger.remove()
    logger.add(sys.stderr, level=level)
    if settings.logging_dir:
        directory = expand_path(settings.logging_dir)
        directory.mkdir(parents=True, exist_ok=True)
        logger.add(directory / filename, level=level, rotation="50 MB", retention=5)
