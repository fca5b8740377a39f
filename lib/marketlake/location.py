"""Where the lakehouse lives: a local folder, or a URI on a distributed filesystem or object store
(hdfs://namenode:8020/lake, s3a://bucket/lake). Nothing here touches a filesystem or imports pyspark."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from marketlake.errors import ConfigError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: C: is a Windows drive, not a scheme
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://([^/?#]*)([^?#]*)$")


@dataclass(frozen=True)
class Location:
    """A folder or file of the lakehouse. `loc / "name"` joins with exactly one slash and keeps a URI's scheme and
    authority, which a pathlib join collapses (hdfs://nn:8020/lake becomes hdfs:/nn:8020/lake, a local folder);
    str() is what Spark, Delta and delta-rs take: a plain path for a local folder, the URI otherwise. Code that
    needs the local filesystem (Derby, SQLite, a lock file) asks for `local_path`, which a remote location refuses."""

    text: str

    @classmethod
    def of(cls, value: Location | str | os.PathLike[str]) -> Location:
        """A location from a local path, a `file:` URI of this host (the same local path) or another URI, written
        `scheme://authority/path` (a trailing slash is dropped). A local path is kept as given: marketlake.config
        resolves the configured ones. A malformed URI is a ValueError."""
        if isinstance(value, Location):
            return value
        text = os.fspath(value)
        scheme = _SCHEME.match(text)
        if scheme is None:
            return cls(str(Path(text)))
        if scheme.group(1).lower() == "file":
            parsed = urlparse(text)
            if parsed.netloc not in ("", "localhost"):
                raise ValueError("a file: URI must name this host (file:///path)")
            return cls(str(Path(unquote(parsed.path))))
        uri = _URI.match(text)
        if uri is None:
            raise ValueError(f"write a {scheme.group(1)}: location as {scheme.group(1)}://authority/path")
        return cls(f"{uri.group(1)}://{uri.group(2)}{uri.group(3).rstrip('/')}")

    @property
    def scheme(self) -> str | None:
        """The URI scheme in lower case (hdfs, s3a, ...); None for a local path."""
        uri = _URI.match(self.text)
        return uri.group(1).lower() if uri else None

    @property
    def is_local(self) -> bool:
        return self.scheme is None

    @property
    def local_path(self) -> Path:
        """The local folder or file; a location on another filesystem has none (one clear error)."""
        if not self.is_local:
            raise ConfigError(f"{self.text} is not on the local filesystem, and this needs a local path")
        return Path(self.text)

    def __truediv__(self, name: str) -> Location:
        if self.is_local:
            return Location(str(Path(self.text) / name))
        part = name.strip("/")
        if not part:
            raise ValueError(f"cannot join an empty name to {self.text}")
        return Location(f"{self.text}/{part}")

    def __str__(self) -> str:
        return self.text
