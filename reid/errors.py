"""Exception types with messages meant for a person (ranger, biologist), not a traceback."""

from __future__ import annotations


class ReidError(Exception):
    """Base class: every error the library raises on purpose."""


class ImageError(ReidError):
    """An image could not be used: empty, truncated, not an image, too large, ..."""


class LabelsError(ReidError):
    """A labels CSV is malformed (missing column, bad value, missing file)."""


class NotFoundError(ReidError):
    """An individual, image or job id that does not exist."""


class GoneError(NotFoundError):
    """An id that existed and was merged into another: the message says which. Still a 404 over
    HTTP (the id names nothing now), with a detail that leads a stale link to the animal."""


class ModelError(ReidError):
    """A checkpoint cannot be loaded or does not match the catalogue."""


class BusyError(ReidError):
    """Temporarily unable (a resource held by other work): the same request later should work.
    HTTP 503 with Retry-After."""

    retry_after_s = 5


class ConflictError(ReidError):
    """The request conflicts with the current state: decided meanwhile, name taken, changed since."""
