"""Warrant: a network protocol whose packets carry their own authority."""

__version__ = "0.1.0"
