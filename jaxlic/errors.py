"""Errors that a user of jaxlic can cause.

Every one carries a one-line, human-readable message; the CLI prints it and exits non-zero
instead of showing a traceback.
"""


class JaxlicError(Exception):
    """Base class of all user-facing jaxlic errors."""


class BitstreamError(JaxlicError):
    """A compressed stream is truncated, corrupted or of an unknown format/version."""


class ModelError(JaxlicError):
    """Unknown model or quality, or weights that do not match the model."""


class ImageError(JaxlicError):
    """An input file that is missing, unreadable or not an image."""
