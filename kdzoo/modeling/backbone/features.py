"""The feature lists of feature distillers (FitNet, AT, SP, VID, NST, AB, ...), on request.

Every backbone's ``forward(x, features=False, preact=False)`` returns the contract's dict
(``logits``, ``embedding``, ``stages``) and, only when asked:

* ``features=True`` adds ``"features"``: the list RepDistiller's ``model(x, is_feat=True)``
  returns, ``[stem, stage_1, ..., stage_n, embedding]``. For the CIFAR zoo that is
  ``[*stages, embedding]`` (``stages[0]`` is the stem).
* ``preact=True`` (implies ``features``) adds ``"preact_stages"``, one tensor per entry of
  ``stages`` and of the same shape: that stage before its last ReLU, exactly as RepDistiller's
  ``is_feat=True, preact=True`` returns it (some families return other tensors there; each model
  file says which); ``"features"`` is then RepDistiller's ``preact=True`` list.

Nothing of this is computed or kept on the default call, which is the one KD, CRD and CoCoRD make.
"""

import torch
from torch import nn


def run_stage(
    stage: nn.Sequential, x: torch.Tensor, preact: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(stage(x), None)``; with ``preact``, ``(stage(x), its last block's output before the
    last ReLU)``, read from the block's ``forward(x, preact=True) -> (out, preact)``."""
    if not preact:
        return stage(x), None
    *body, last = stage
    for block in body:
        x = block(x)
    return last(x, preact=True)


def backbone_output(
    logits: torch.Tensor,
    embedding: torch.Tensor,
    stages: list[torch.Tensor],
    preact_stages: list,
    features: bool,
    preact: bool,
    stem: torch.Tensor | None = None,
) -> dict:
    """The contract's dict, with ``preact_stages`` and ``features`` only where asked for
    (``preact_stages`` is read only with ``preact``). ``stem`` leads the feature list of
    backbones whose ``stages`` do not start with it (torchvision's ResNets)."""
    out = {"logits": logits, "embedding": embedding, "stages": stages}
    if preact:
        out["preact_stages"] = preact_stages
    if features or preact:
        lead = [] if stem is None else [stem]
        out["features"] = [*lead, *(preact_stages if preact else stages), embedding]
    return out
