"""Errors a command turns into a clear message and exit code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad command-line input; the message says what to fix. Exit code 2."""
