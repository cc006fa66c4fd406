"""Where a store's pieces live: local paths or object-store URLs, and the folder of an epoch.

The bottom of ``neuralatlas.store``: :mod:`.core` and :mod:`.integrity` both read these, so
they sit below both (no import cycle between the two).
"""

from __future__ import annotations

from typing import Any


def _slot(epoch: int | None) -> str:
    return "" if epoch is None else f"epochs/{int(epoch)}/"


class StoreURL(str):
    """The location of a store held in an object store.

    It is a URL with the few ``Path`` attributes the rest of the code reads (``name``, ``stem``, ``parent``).
    """

    @property
    def name(self) -> str:
        """The last path segment."""
        return self.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        """The last path segment without its suffix."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name

    @property
    def parent(self) -> StoreURL:
        """The URL one level up."""
        return StoreURL(self.rstrip("/").rsplit("/", 1)[0])

    def absolute(self) -> StoreURL:
        """The URL itself (a URL is absolute; as ``Path.absolute``)."""
        return self


def is_url(location: Any) -> bool:
    """Whether ``location`` is a URL (``s3://...``) rather than a local path."""
    return isinstance(location, str) and "://" in location
