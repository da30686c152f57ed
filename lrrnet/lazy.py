"""Names a package exports but imports only on first use (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, module_of: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each name of ``module_of`` from its module.

    Args:
        package: the package's ``__name__``, for the error message.
        module_of: exported name → the module that defines it.
        namespace: the package's ``globals()``; a name is stored there once imported, so
            later lookups do not come back here.
    """

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            # Also how ``from package import submodule`` learns that it is a submodule.
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
