"""Top-k accuracy of a classifier over a (possibly sharded) test set."""

from collections.abc import Callable, Iterable

import torch

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
    predict: Callable[[dict], torch.Tensor], batches: Iterable[dict], ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy in percent, summed over every rank's shard: ``{"top1": ..., "top5": ...}``.

    ``predict`` maps a batch to logits ``[B, C]``. Counts stay on the device until the end.
    """
    tally = None  # [len(ks) + 1]: hits for each k, then the number of samples
    for batch in batches:
        logits, labels = predict(batch), batch["label"]
        counts = torch.cat([topk_correct(logits, labels, ks), labels.new_tensor([len(labels)])])
        tally = counts if tally is None else tally + counts
    if tally is None:
        raise ValueError("the test set is empty")
    tally = comm.all_reduce_sum(tally)
    values = (100.0 * tally[:-1].double() / tally[-1]).tolist()
    return {f"top{k}": v for k, v in zip(ks, values, strict=True)}
