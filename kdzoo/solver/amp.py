"""Mixed precision: the autocast dtype ``SOLVER.AMP`` asks for."""

import torch

from kdzoo.config import require_choice
from kdzoo.utils.errors import ConfigError

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def check_amp_dtype(cfg) -> None:
    """Refuse, in one line, a ``SOLVER.AMP.DTYPE`` that is not one of :data:`AMP_DTYPES`."""
    require_choice("SOLVER.AMP.DTYPE", cfg.SOLVER.AMP.DTYPE, sorted(AMP_DTYPES))


def amp_dtype(cfg, device: torch.device) -> torch.dtype | None:
    """The autocast dtype on ``device``, or None for float32 (``SOLVER.AMP.ENABLED`` off)."""
    check_amp_dtype(cfg)
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    dtype = AMP_DTYPES[cfg.SOLVER.AMP.DTYPE]
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError("SOLVER.AMP.DTYPE float16 needs a GPU; use bfloat16 on the CPU")
    return dtype
