"""The one YAML loader of the project: PyYAML's safe loader with YAML 1.2 floats.

PyYAML resolves plain scalars by YAML 1.1 rules, under which `1e-09` and `2e3`
(an exponent without a dot, or without a sign) are strings; YAML 1.2, and every
other YAML tool a user checks a policy with, reads them as floats.  `Loader`
adds the 1.2 float forms, so a policy value written that way is a number here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

# YAML 1.2 core schema floats that the 1.1 resolver misses: a mantissa without a
# dot and/or an exponent without a sign (the forms with both are already floats).
_FLOAT_12 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


class Loader(yaml.SafeLoader):
    """SafeLoader that also resolves YAML 1.2 exponent floats."""


Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def load(text: str) -> Any:
    """One YAML document, safely, with YAML 1.2 floats."""
    return yaml.load(text, Loader=Loader)


def load_all(text: str) -> Iterator[Any]:
    """Every document of a YAML stream, safely, with YAML 1.2 floats."""
    return yaml.load_all(text, Loader=Loader)


def compose(text: str) -> yaml.Node | None:
    """The node tree of one document (for line numbers), resolved as `load` resolves it."""
    return yaml.compose(text, Loader=Loader)


def compose_all(text: str) -> Iterator[yaml.Node]:
    """The node trees of every document of a stream."""
    return yaml.compose_all(text, Loader=Loader)
