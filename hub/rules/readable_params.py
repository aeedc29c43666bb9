"""Validated rule parameters as plain objects, for the rules to read per reading.

Rule parameters are pydantic models: validated once, when the rules file or a device's
overrides are resolved (hub/rules/config.py). Reading one of their attributes costs a pass
through the class's `__getattr__` hook (pydantic's BaseModel defines one, so CPython looks
both `__getattribute__` and `__getattr__` up and calls through a wrapper each time, ~300
instructions from compiled code), and the rules read about twenty per reading. The rules
get a twin instead: an object of a class with the model's fields as slots and the model's
own methods and properties, holding the values the model validated; the resolved rule
keeps the model itself for everything else. With the twins bench_instructions counted
6,700 fewer instructions per message (117,286 → 110,612; docs/performance.md, issue 23).
"""

from types import FunctionType
from typing import Any

from pydantic import BaseModel

_TWINS: dict[type[BaseModel], type] = {}
_set_slot = object.__setattr__


class _Readable:
    """What every twin shares: read-only, equal by value, shown like its model."""

    __slots__ = ()
    _model: type[BaseModel]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._model.model_fields}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Readable):
            return NotImplemented
        return self._model is other._model and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self._model, tuple(map(repr, self._values().values()))))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._values().items())
        return f"{self._model.__name__}({shown})"


def _twin(model: type[BaseModel]) -> type:
    """The twin class of a parameters model: its fields as slots, its methods and properties."""
    namespace: dict[str, Any] = {
        "__slots__": tuple(model.model_fields),
        "__module__": model.__module__,
        "__doc__": model.__doc__,
        "_model": model,
    }
    namespace.update(
        (name, value)
        for klass in reversed(model.__mro__)
        if issubclass(klass, BaseModel) and klass is not BaseModel
        for name, value in vars(klass).items()
        if not name.startswith("__") and isinstance(value, FunctionType | property)
    )
    return type(f"{model.__name__}Values", (_Readable,), namespace)


def readable(params: BaseModel) -> Any:
    """The model's validated values as a twin object (see the module's docstring)."""
    model = type(params)
    twin = _TWINS.get(model)
    if twin is None:
        twin = _TWINS[model] = _twin(model)
    values: Any = object.__new__(twin)
    for name in model.model_fields:
        _set_slot(values, name, params.__dict__[name])
    return values
