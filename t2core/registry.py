"""A named registry: the one mechanism behind every "add a file + one registration call"
extension point (models, tasks, samplers, profiles), with the same unknown-name error."""

from __future__ import annotations

from typing import Generic, TypeVar

from t2core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind, self.hint = kind, hint
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UnknownNameError(self.kind, name, list(self._items), hint=self.hint)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def import_submodules(package: str, path) -> list[str]:
    """Import every module of a package (its `__name__` and `__path__`), so that each registers
    what it defines: adding a task, a report or a profile is one new file, with no list to edit."""
    import importlib
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
