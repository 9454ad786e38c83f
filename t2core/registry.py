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
