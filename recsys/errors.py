"""Named errors: callers catch what went wrong, not a bare ``Exception``."""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error raised by recsys."""


class DataValidationError(RecsysError, ValueError):
    """Input data broke its contract; says which file, row and column, and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.expected = expected
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        text = f"{prefix}: {message}" if prefix else message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)


class ConfigError(RecsysError, ValueError):
    """A configuration or policy file is invalid."""


class ModelFitError(RecsysError):
    """Training could not produce a usable model."""


class NotFittedError(RecsysError, AttributeError):
    """A model was used before ``fit`` (or ``load``)."""


class ArtifactError(RecsysError):
    """A saved model directory is missing, corrupt or was tampered with."""


class ArtifactFormatError(ArtifactError):
    """A model directory was written in a format version this recsys cannot read."""


class ManifestError(ArtifactError):
    """A manifest is unreadable, not canonical JSON, or breaks its schema."""


class ArtifactIntegrityError(ArtifactError):
    """A model file or the manifest changed since it was saved (HMAC or SHA-256 mismatch)."""


class UnsafeArtifactPathError(ArtifactError):
    """A manifest names a file outside the model directory, a symlink, or an unlisted file."""


class KeyMismatchError(ArtifactError, ConfigError):
    """The key in use is not the one the model (or the erasure records) were made with."""


class StaleModelError(ArtifactError):
    """A save would replace a version published after the one its changes were made to."""


class ErasureError(RecsysError):
    """An erasure could not be completed or could not be honoured (its tombstone stays)."""


class TombstoneKeyError(ErasureError, ConfigError):
    """Erasure records exist that the key in use cannot match: training would re-learn them."""
