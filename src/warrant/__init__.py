"""Warrant: a network protocol whose packets carry their own authority."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("warrant")  # pyproject.toml is the only place the version is written
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
