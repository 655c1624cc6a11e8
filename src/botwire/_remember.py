"""``@memory.remember(...)``: load a function's state before the call, save it after.

One plan (a generator: load, call, save, maybe again) holds every decision; a
sync and an async driver run it, chosen once at decoration time from the
function itself, so ``inspect.iscoroutinefunction`` still tells the truth. The
wrapper is a ``wrapt.FunctionWrapper``: signature, defaults, ``__wrapped__``,
``help()`` and binding as a method, classmethod or staticmethod are the
function's own.
"""

from __future__ import annotations

import copy
import inspect
import string
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

import wrapt

from . import _codec
from ._core import NOT_PROVIDED
from ._errors import Conflict, InvalidRequest
from ._validate import check_key, check_ttl
from .ops import Delete, Get, Op, Put, TTLArg

if TYPE_CHECKING:
    from ._core import MemoryCore

SAVE_MODES = ("state", "result")
CONFLICT_MODES = ("raise", "retry", "overwrite")
RETRIES = 10  # on_conflict="retry": calls of the function before Conflict is raised


class _Call(NamedTuple):
    """A plan step: call the function, ``state`` given as its ``into`` argument."""

    state: Any


Step = list[Op] | _Call
Plan = Generator[Step, Any, Any]


class Recipe:
    """Everything ``remember`` was told about one function, checked once."""

    def __init__(
        self,
        memory: Callable[[], MemoryCore],
        func: Callable[..., Any],
        template: str,
        into: str | None,
        default: Any,
        ttl: Any,
        save: str,
        on_conflict: str,
    ) -> None:
        if save not in SAVE_MODES:
            raise InvalidRequest(f"save must be one of {SAVE_MODES}, not {save!r}")
        if on_conflict not in CONFLICT_MODES:
            raise InvalidRequest(
                f"on_conflict must be one of {CONFLICT_MODES}, not {on_conflict!r}"
            )
        self.memory = memory
        self.is_async = inspect.iscoroutinefunction(func)
        if isinstance(func, (classmethod, staticmethod)):
            func = func.__func__
            self.is_async = inspect.iscoroutinefunction(func)
        self.name = getattr(func, "__qualname__", repr(func))
        self.signature = inspect.signature(func)
        params = self.signature.parameters
        if into is None:
            if not template.isidentifier():
                raise InvalidRequest(
                    f"remember({template!r}) on {self.name}: name the parameter that receives "
                    "the value with into=... (the key is not a plain identifier)"
                )
            into = template
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if into not in params and not takes_kwargs:
            raise InvalidRequest(f"{self.name}() has no parameter {into!r} to receive the value")
        if into in params and params[into].kind is inspect.Parameter.POSITIONAL_ONLY:
            raise InvalidRequest(f"{self.name}(): {into!r} must not be positional-only")
        self.into = into
        # What callers pass: every parameter but the one memory fills in.
        self.call_signature = self.signature.replace(
            parameters=[p for p in params.values() if p.name != into]
        )
        self.template = template
        for field in _fields(template):
            if field not in self.call_signature.parameters and not takes_kwargs:
                raise InvalidRequest(
                    f"key template {template!r} names {field!r}, which is not a parameter "
                    f"of {self.name}()"
                )
        self.default = default
        self.ttl = NOT_PROVIDED if ttl is NOT_PROVIDED else check_ttl(ttl)
        self.save = save
        self.on_conflict = on_conflict

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The key for a call with ``args`` and ``kwargs`` (bound as the function would)."""
        if self.into in kwargs:
            raise InvalidRequest(f"{self.name}() gets {self.into!r} from memory; do not pass it")
        try:
            bound = self.call_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
        bound.apply_defaults()
        values = {**bound.arguments, **bound.kwargs}
        try:
            key = self.template.format_map(values)
        except (KeyError, AttributeError, IndexError, TypeError) as exc:
            raise InvalidRequest(
                f"key template {self.template!r} could not be filled for {self.name}(): {exc!r}"
            ) from None
        return check_key(key)

    def fresh_default(self) -> Any:
        if callable(self.default):
            return self.default()
        return copy.deepcopy(self.default)  # a shared [] or {} would leak between calls

    def plan(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
        """Load, call, save; under ``on_conflict="retry"`` again after a lost race."""
        key = self.key(args, kwargs)
        memory = self.memory()
        ttl = memory._default_ttl if self.ttl is NOT_PROVIDED else self.ttl
        for _ in range(RETRIES):
            (record,) = yield [Get(key, fresh=True)]
            state = self.fresh_default() if record is None else _codec.decode(record.data)
            before = record.data if record is not None else _encoded_or_none(state)
            result = yield _Call(state)
            data = _codec.encode(state if self.save == "state" else result)
            if data == before:
                return result
            guard = None
            if self.on_conflict != "overwrite":
                guard = 0 if record is None else record.version
            try:
                yield [Put(key, data, ttl, guard)]
            except Conflict:
                if self.on_conflict == "retry":
                    continue
                raise
            return result
        raise Conflict(f"{self.name}: lost {RETRIES} races in a row on {key!r}", keys=[key])


def _encoded_or_none(value: Any) -> bytes | None:
    try:
        return _codec.encode(value)
    except InvalidRequest:
        return None  # a default that cannot be stored: any result differs from it


def _fields(template: str) -> list[str]:
    """The argument names a key template uses (``"h:{user.id}"`` uses ``user``)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidRequest(f"bad key template {template!r}: {exc}") from None
    for _, field, _, _ in parsed:
        if field is None:
            continue
        name = field.split(".", 1)[0].split("[", 1)[0]
        if not name.isidentifier():
            raise InvalidRequest(
                f"key template {template!r}: use argument names like {{user_id}}, not {{{field}}}"
            )
        names.append(name)
    return names


# -- drivers ------------------------------------------------------------------------------


def _as_unbound(instance: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments as the function's own signature sees them (``self``/``cls`` first).

    wrapt gives the wrapper the instance (the class for a classmethod, ``None``
    for a plain or static function) apart from ``args``.
    """
    return args if instance is None else (instance, *args)


def _run(recipe: Recipe, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    plan = recipe.plan(_as_unbound(instance, args), kwargs)
    try:
        step = next(plan)
        while True:
            if isinstance(step, _Call):
                step = plan.send(wrapped(*args, **{**kwargs, recipe.into: step.state}))
                continue
            memory = recipe.memory()
            try:
                results = memory.store.batch(memory.namespace, step)
            except Conflict as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(results)
    except StopIteration as done:
        return done.value


async def _arun(recipe: Recipe, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    plan = recipe.plan(_as_unbound(instance, args), kwargs)
    try:
        step = next(plan)
        while True:
            if isinstance(step, _Call):
                step = plan.send(await wrapped(*args, **{**kwargs, recipe.into: step.state}))
                continue
            memory = recipe.memory()
            try:
                results = await memory.store.abatch(memory.namespace, step)
            except Conflict as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(results)
    except StopIteration as done:
        return done.value


# -- the wrapper ---------------------------------------------------------------------------


if TYPE_CHECKING:
    _Wrapper = wrapt.FunctionWrapper[Any, Any]
    _BoundWrapper = wrapt.BoundFunctionWrapper[Any, Any]
else:
    _Wrapper, _BoundWrapper = wrapt.FunctionWrapper, wrapt.BoundFunctionWrapper


class _Control:
    """``key_for``, ``clear`` and ``memory`` on the wrapper, bound or not."""

    _self_recipe: Recipe

    def _instance(self) -> Any:
        return None

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        """The key a call with these arguments reads and writes."""
        return self._self_recipe.key(_as_unbound(self._instance(), args), kwargs)

    def clear(self, *args: Any, **kwargs: Any) -> Any:
        """Forget the state of a call with these arguments (awaitable for async functions)."""
        key = self.key_for(*args, **kwargs)
        memory = self._self_recipe.memory()
        if self._self_recipe.is_async:
            return _aclear(memory, key)
        return memory.store.batch(memory.namespace, [Delete(key)])[0]

    @property
    def memory(self) -> MemoryCore:
        """The memory the state lives in."""
        return self._self_recipe.memory()


async def _aclear(memory: MemoryCore, key: str) -> bool:
    return bool((await memory.store.abatch(memory.namespace, [Delete(key)]))[0])


class BoundRemembered(_Control, _BoundWrapper):
    def _instance(self) -> Any:
        if self._self_binding in ("classmethod", "staticmethod"):
            return getattr(self.__wrapped__, "__self__", None)
        return self._self_instance

    @property
    def _self_recipe(self) -> Recipe:  # type: ignore[override]
        return self._self_parent._self_recipe  # type: ignore[no-any-return]


class Remembered(_Control, _Wrapper):
    """What ``@remember`` returns: the function itself, plus ``key_for``/``clear``/``memory``."""

    __bound_function_wrapper__ = BoundRemembered


def remember(
    memory: Callable[[], MemoryCore],
    template: str,
    *,
    into: str | None = None,
    default: Any = None,
    ttl: TTLArg = NOT_PROVIDED,
    save: str = "state",
    on_conflict: str = "raise",
) -> Callable[[Any], Any]:
    """The decorator behind ``Memory.remember`` and ``botwire.remember``."""

    def decorate(func: Any) -> Any:
        recipe = Recipe(memory, func, template, into, default, ttl, save, on_conflict)

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return await _arun(recipe, wrapped, instance, args, kwargs)

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return _run(recipe, wrapped, instance, args, kwargs)

        wrapped = Remembered(func, async_wrapper if recipe.is_async else wrapper)
        wrapped._self_recipe = recipe
        return wrapped

    return decorate
