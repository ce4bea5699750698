"""The loss registry. A registered object is called as ``obj(**kwargs)`` and returns an
``nn.Module`` (or a function) that distillers compose; weights are applied by the distiller."""

from kdzoo.utils.registry import Registry, lookup

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = "Distillation losses by name: ``obj(**kwargs) -> nn.Module``."


def build_loss(name: str, **kwargs):
    """Build the loss registered as ``name`` with its options as keyword arguments."""
    return lookup(LOSS_REGISTRY, name)(**kwargs)
