"""Command lines that take flags and ``KEY VALUE`` config overrides in any order.

``train_net.py --config F SOLVER.MAX_ITER 100 --resume`` is what a user types after appending
``--resume`` to the command that was just interrupted: the flags may come before, between or after
the overrides. A token that starts with ``--`` where a key's value is expected is refused, since a
flag there almost always means a forgotten value.
"""

import argparse
import sys
from collections.abc import Sequence

from kdzoo.utils.errors import ConfigError


class OverridesArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose leftover ``KEY VALUE`` pairs, wherever they sit
    among the flags, land in ``args.opts`` (a flat list, as ``CfgNode.merge_from_list`` takes).

    Flags must be spelled in full (no abbreviations), so that every token is either a known flag,
    a flag's value, or part of an override.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, namespace=None) -> argparse.Namespace:
        """Parse the flags; raise a one-line :class:`ConfigError` for a flag where a key's value
        is expected, or a key without a value."""
        flags, overrides = self.split_flags(sys.argv[1:] if args is None else list(args))
        parsed = super().parse_args(flags, namespace)
        parsed.opts = overrides
        return parsed

    def split_flags(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """``(flags with their values, KEY VALUE overrides)``, each in command-line order."""
        flags, overrides = [], []
        key = None  # the override key whose value comes next
        tokens = iter(argv)
        for token in tokens:
            looks_like_flag = token.startswith("--") or token in self._option_string_actions
            if key is not None:
                if looks_like_flag:
                    raise ConfigError(f"command line: {key} needs a value before {token}")
                overrides.append(token)
                key = None
            elif looks_like_flag:
                flags.append(token)
                action = self._option_string_actions.get(token)  # None for --flag=value
                if action is not None and action.nargs != 0:  # the flag's value follows it
                    value = next(tokens, None)
                    if value is not None:
                        flags.append(value)
            else:
                overrides.append(token)
                key = token
        if key is not None:
            raise ConfigError(f"command line: {key} needs a value")
        return flags, overrides
