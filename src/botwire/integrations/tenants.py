"""One tenant per namespace, if the user wants it: where an adapter puts a scope's data.

Every adapter takes ``namespace=`` as one of:

* a plain name (``"langchain"``): every scope shares that namespace (the default);
* a template with ``{scope}`` (``"chat-{scope}"``): each scope (a session id, a
  user id, a LangGraph namespace head...) in a namespace of its own;
* a callable ``scope -> name``, for anything else.

A namespace per tenant is what lets a per-tenant token (``--auth token``, the
pattern ``chat-alice*``) isolate that tenant, and keeps one busy tenant's writes
and bytes from counting against everyone's limits. A scope is placed in the
name as it is: a name keeps to ``A-Z a-z 0-9 . _ - : @`` (else ``InvalidName``
before any I/O), so derive it (a hash, say) in a callable where scopes may
hold other characters.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import AsyncMemory, Memory

NamespaceSpec = str | Callable[[str], str]


def namespace_for(spec: NamespaceSpec, scope: str) -> str:
    """The namespace of ``scope`` under ``spec`` (see the module docstring)."""
    if callable(spec):
        return spec(scope)
    return spec.replace("{scope}", scope) if "{scope}" in spec else spec


def per_scope(spec: NamespaceSpec) -> bool:
    """Whether ``spec`` gives scopes namespaces of their own."""
    return callable(spec) or "{scope}" in spec


class Tenants:
    """The ``Memory`` (and ``AsyncMemory``) of each scope, made on first use; ``close`` them all.

    ``memory`` given: that one memory for every scope (its namespace wins; the
    caller keeps owning it); else ``namespace`` (a :data:`NamespaceSpec`) on
    ``url`` with ``api_key``, every scope's memory sharing the one store the URL
    opens (botwire shares a store per URL and credentials); ``cache=False`` leaves out the
    read cache of a server URL (for data that is never read back by key).
    """

    def __init__(
        self,
        memory: Memory | None,
        namespace: NamespaceSpec,
        url: str | None = None,
        *,
        api_key: str | None = None,
        cache: bool = True,
    ) -> None:
        self.spec = namespace
        self.cache = cache
        self.fixed = memory
        self.url = url
        self.api_key = api_key
        self._sync: dict[str, Memory] = {}
        self._async: dict[str, AsyncMemory] = {}

    def name(self, scope: str) -> str:
        if self.fixed is not None:
            return self.fixed.namespace
        return namespace_for(self.spec, scope)

    def memory(self, scope: str = "") -> Memory:
        if self.fixed is not None:
            return self.fixed
        name = self.name(scope)
        found = self._sync.get(name)
        if found is None:
            found = self._sync[name] = Memory(
                name, url=self.url, api_key=self.api_key, cache=self.cache
            )
        return found

    def amemory(self, scope: str = "") -> AsyncMemory:
        name = self.name(scope)
        found = self._async.get(name)
        if found is None:
            if self.fixed is not None:  # on the caller's store, which the caller closes
                found = AsyncMemory(name, url=self.fixed.store)
            else:
                found = AsyncMemory(name, url=self.url, api_key=self.api_key, cache=self.cache)
            self._async[name] = found
        return found

    def used(self) -> list[str]:
        """The namespaces this instance has opened (a per-scope layout reaches only these)."""
        return sorted(self._sync.keys() | self._async.keys())

    def close(self) -> None:
        """Release every memory this instance made (not a ``memory`` it was given)."""
        made, self._sync = list(self._sync.values()), {}
        for memory in made:
            memory.close()

    async def aclose(self) -> None:
        made, self._async = list(self._async.values()), {}
        for memory in made:
            await memory.close()
        self.close()
