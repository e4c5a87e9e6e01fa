"""The one exception tree for image files.

Every failure that comes from an image file (or from asking an image for
something it cannot do) is an :class:`ImageError`. Each error keeps the file it
is about, the byte offset in that file where the problem was found (or
``None``) and a message; ``str(err)`` is one clear sentence that names all three,
so the CLI and the QMP layer can show it as is::

    ImageError
     ├── ImageIOError            the file could not be opened, read or written (errno kept)
     ├── CorruptImageError       the metadata is inconsistent; reading it would give garbage
     ├── UnsupportedImageError   a valid image using a feature the engine refuses (named)
     ├── ImageReadOnlyError      a write to an image opened (or only openable) read-only
     ├── RequestError            an access outside the image (also a ValueError)
     └── BackingChainError       a backing file is missing, unreadable or forms a loop
"""

from __future__ import annotations


class ImageError(Exception):
    """Base of every image error: ``path``, ``offset`` (or None) and ``message``."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None) -> None:
        self.message = message
        self.path = path
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        at = f" (at file offset {self.offset:#x})" if self.offset is not None else ""
        return f"{where}{self.message}{at}"


class ImageIOError(ImageError):
    """An operating-system error on the image file; ``errno`` is kept."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None,
                 errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message, path, offset)


class CorruptImageError(ImageError):
    """The image's metadata is inconsistent (bad header, tables past EOF, ...)."""


class UnsupportedImageError(ImageError):
    """A well-formed image using a feature the engine does not implement.

    ``feature`` names it (``"encryption"``, ``"external data file"``, ...).
    """

    def __init__(self, message: str, path: str | None = None, offset: int | None = None,
                 feature: str | None = None) -> None:
        self.feature = feature
        super().__init__(message, path, offset)


class ImageReadOnlyError(ImageError):
    """A write was attempted on an image that is open read-only (or must stay so)."""


class RequestError(ImageError, ValueError):
    """A read or write outside the image, or with a negative offset or length."""


class BackingChainError(ImageError):
    """A backing chain cannot be opened: a file is missing, unreadable or loops."""
