"""Error types. Every error names the offending value, why it is wrong, and the fix."""

from __future__ import annotations


class T2Error(Exception):
    """Base class for user-facing errors: the CLI prints these without a traceback."""


class ConfigError(T2Error, ValueError):
    """A configuration value is invalid."""


class UnknownNameError(T2Error, KeyError):
    """A registry lookup (model alias, task, profile...) failed."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = "") -> None:
        self.kind, self.name, self.known = kind, name, known
        msg = f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}."
        if hint:
            msg += f" {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DataError(T2Error):
    """A dataset file is missing or malformed."""


class ArtifactError(T2Error):
    """A stored artifact is missing, corrupted or does not match what was asked for."""


class ModelError(T2Error):
    """A model cannot be found or loaded."""
