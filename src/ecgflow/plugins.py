"""One registry pattern for ecgflow's pluggable kinds (sources, storage schemes, readers, ...).

A :class:`Registry` maps names to objects. An entry is added either eagerly, with the
``register(name)`` decorator, or lazily, with ``register_lazy(name, "module:attribute")``: the
module is imported on the first ``get`` only, so a kind whose dependencies are slow to import
(boto3, pandas, scipy) costs nothing until it is used. ``get`` of an unknown name raises
:class:`~ecgflow.errors.EcgflowError` naming the known ones; ``names()`` lists them in the order
they were registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from ecgflow.errors import EcgflowError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind; ``what`` names the kind in error messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T | str] = {}  # a str is a lazy "module:attribute"
        self._lazy: set[str] = set()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` and return it unchanged."""

        def add(obj: T) -> T:
            self._add(name, obj)
            return obj

        return add

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"module"`` or ``"module:attribute"``, imported on the first :meth:`get`."""
        self._add(name, target)
        self._lazy.add(name)

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`EcgflowError` lists the known names."""
        if name not in self._entries:
            known = ", ".join(self._entries) or "none"
            raise EcgflowError(f"unknown {self.what} {name!r}; expected one of: {known}")
        if name in self._lazy:
            module, _, attribute = cast(str, self._entries[name]).partition(":")
            loaded = importlib.import_module(module)
            self._entries[name] = getattr(loaded, attribute) if attribute else loaded
            self._lazy.discard(name)
        return cast(T, self._entries[name])

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def _add(self, name: str, obj: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = obj
