"""Top-k accuracy of a classifier over a (possibly sharded) test set."""

from collections.abc import Callable, Iterable

import torch
from torch import nn

from kdzoo.utils import comm


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """Number of samples whose label is among the top-k logits, for each k.

    ``logits``: ``[B, C]``, ``labels``: ``[B]`` -> ``[len(ks)]`` int64 counts.
    """
    top = logits.topk(max(ks), dim=1).indices  # [B, max k]
    hits = top == labels[:, None]
    return torch.stack([hits[:, :k].any(dim=1).sum() for k in ks])


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    batches: Iterable[dict],
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    amp_dtype: torch.dtype | None = None,
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Top-k accuracy in percent of ``model``, summed over every rank's shard: ``{"top1": ...,
    "top5": ...}``.

    ``model`` maps images ``[B, 3, H, W]`` to logits ``[B, C]`` (a backbone through
    :class:`~kdzoo.modeling.Classifier`); it runs in eval mode and is put back in the mode it was
    in. ``batches`` yield ``{"image": uint8 [B, 3, H, W], "label": [B]}`` on the device;
    ``preprocess`` turns their images into the model's input (normalisation). ``amp_dtype``
    runs the model under autocast. Counts stay on the device until the end.
    """
    was_training = model.training
    model.eval()
    tally = None  # [len(ks) + 1]: hits for each k, then the number of samples
    try:
        for batch in batches:
            images, labels = batch["image"], batch["label"]
            with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(preprocess(images)).float()
            counts = torch.cat([topk_correct(logits, labels, ks), labels.new_tensor([len(labels)])])
            tally = counts if tally is None else tally + counts
    finally:
        model.train(was_training)
    if tally is None:
        raise ValueError("the test set is empty")
    tally = comm.all_reduce_sum(tally)
    values = (100.0 * tally[:-1].double() / tally[-1]).tolist()
    return {f"top{k}": v for k, v in zip(ks, values, strict=True)}
