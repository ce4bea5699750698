"""fvcore's :class:`~fvcore.common.registry.Registry`, plus registration under a chosen name."""

from typing import Any

from fvcore.common.registry import Registry as _FvcoreRegistry

from .errors import RegistryError, did_you_mean

__all__ = ["Registry", "lookup"]


class Registry(_FvcoreRegistry):
    """fvcore's registry whose ``register`` also takes a name: ``@REGISTRY.register("kd")``.

    ``@REGISTRY.register()`` and ``REGISTRY.register(obj)`` register under ``obj.__name__``, as in
    fvcore; config files use short lower-case names, which Python class names rarely are.
    """

    def register(self, obj: Any = None) -> Any:
        if isinstance(obj, str):
            name = obj

            def deco(func_or_class: Any) -> Any:
                self._do_register(name, func_or_class)
                return func_or_class

            return deco
        return super().register(obj)


def lookup(registry: Registry, name: str) -> Any:
    """Return ``registry.get(name)``, or raise a :class:`RegistryError` listing the known names
    and, last, the ones closest to ``name`` (``did you mean resnet56, resnet50?``)."""
    if name not in registry:
        known = sorted(n for n, _ in registry)
        raise RegistryError(
            f"Unknown {registry._name.lower()} {name!r}; registered names are: {', '.join(known)}"
            + did_you_mean(name, known)
        )
    return registry.get(name)
