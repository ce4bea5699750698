"""CRD's criterion: kdzoo's bank scores against the reference's gathered rows.

Scores of student and teacher embeddings against the two banks, Z, NCE, backward, at B = 64,
K = 16384, D = 128, for N = 50,000 (CIFAR-100) and 1,281,167 (ImageNet). The reference gathers the
``B x (K + 1) x D`` bank rows first and keeps them for backward; both compute the same loss and
gradients (checked on every run). Also timed: the sampler drawing the batch's contrast indices
(``ClassAwareSampler``, distinct negatives and with replacement), on one thread and on all.
"""

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from kdzoo.losses.crd import CRDNCELoss
from kdzoo.memory import ClassAwareSampler, gather_scores

from .measure import in_fresh_process, measure

BATCH, NEGATIVES, DIM = 64, 16384, 128
SIZES = {"cifar100": 50_000, "imagenet": 1_281_167}


def _inputs(n: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 100 if n <= 50_000 else 1000, (n,), generator=generator)
    banks = F.normalize(torch.randn(2, n, DIM, generator=generator), dim=2)
    index = torch.randperm(n, generator=generator)[:BATCH]
    # The criterion's cost does not depend on repeats: the cheap draw (and the indices of before).
    sampler = ClassAwareSampler(labels, NEGATIVES, with_replacement=True).to(device)
    return {
        "banks": banks.to(device),
        "idx": sampler(index.to(device), labels[index].to(device)),
        "v_s": torch.randn(BATCH, DIM, generator=generator).to(device),
        "v_t": torch.randn(BATCH, DIM, generator=generator).to(device),
        "nce": CRDNCELoss(n),
        "z": torch.tensor(1.5 * n, device=device),
    }


def _loss(inputs: dict, scores: Callable) -> list[torch.Tensor]:
    """Forward + backward of both directions; the loss and the two embedding gradients."""
    v_s = inputs["v_s"].clone().requires_grad_()
    v_t = inputs["v_t"].clone().requires_grad_()
    banks, idx, z = inputs["banks"], inputs["idx"], inputs["z"]
    p_s = torch.exp(scores(F.normalize(v_s, dim=1), banks[1], idx) / 0.07) / z
    p_t = torch.exp(scores(F.normalize(v_t, dim=1), banks[0], idx) / 0.07) / z
    loss = inputs["nce"](p_s) + inputs["nce"](p_t)
    loss.backward()
    return [loss.detach(), v_s.grad, v_t.grad]


def gathered_scores(v: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The reference's way: copy out the ``B x (K + 1) x D`` rows, then batched products."""
    rows = torch.index_select(bank, 0, idx.view(-1)).view(*idx.shape, bank.shape[1])
    return torch.bmm(rows, v.unsqueeze(2)).squeeze(2)


def sampler_ms(n: int, device: torch.device, repeats: int) -> dict:
    """Median ms of one sampler call for a batch, ``{draw: {threads: ms}}``, on one thread and on
    the process's default number."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 100 if n <= 50_000 else 1000, (n,), generator=generator)
    index = torch.randperm(n, generator=generator)[:BATCH].to(device)
    label = labels[index.cpu()].to(device)
    threads = sorted({1, torch.get_num_threads()})
    results = {}
    for draw in ("distinct", "with_replacement"):
        sampler = ClassAwareSampler(labels, NEGATIVES, with_replacement=draw != "distinct")
        sampler = sampler.to(device)
        results[draw] = {}
        for count in threads:
            torch.set_num_threads(count)
            times = []
            for _ in range(repeats + 1):  # the first call warms up
                start = time.perf_counter()
                sampler(index, label)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            results[draw][str(count)] = statistics.median(times[1:]) * 1e3
        torch.set_num_threads(threads[-1])
    return results


def worker(n: str, impl: str, device: str, repeats: str) -> dict:
    """One implementation (or ``"sampler"``) at bank size ``n``, inside a fresh process."""
    device = torch.device(device)
    if impl == "sampler":
        return sampler_ms(int(n), device, int(repeats))
    inputs = _inputs(int(n), device)
    scores = gather_scores if impl == "kdzoo" else gathered_scores
    seconds, peak = measure(lambda: _loss(inputs, scores), device, int(repeats))
    outputs = [t.cpu().tolist() for t in _loss(inputs, scores)]
    return {"seconds": seconds, "peak_mib": peak, "outputs": outputs}


def run(device: torch.device, quick: bool) -> dict:
    results = {}
    sizes = {"cifar100": SIZES["cifar100"]} if quick else SIZES
    repeats = "2" if quick else "5"
    for name, n in sizes.items():
        runs = {}
        for impl in ("kdzoo", "reference"):
            args = ("crd", str(n), impl, str(device), repeats)
            timed = in_fresh_process(*args)
            peak = in_fresh_process(*args, exact_memory=True)["peak_mib"]
            runs[impl] = {**timed, "peak_mib": peak}
        for a, b in zip(runs["reference"]["outputs"], runs["kdzoo"]["outputs"], strict=True):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-6)
        ours, ref = runs["kdzoo"], runs["reference"]
        results[name] = {
            "N": n,
            "reference_s": ref["seconds"],
            "kdzoo_s": ours["seconds"],
            "speedup": ref["seconds"] / ours["seconds"],
            "reference_peak_mib": ref["peak_mib"],
            "kdzoo_peak_mib": ours["peak_mib"],
            "memory_ratio": ours["peak_mib"] / ref["peak_mib"],
            "sampler_ms": in_fresh_process("crd", str(n), "sampler", str(device), repeats),
        }
    return results


def _per_thread(ms: dict) -> str:
    """``"41 / 33"``: ms on one thread / on all."""
    return " / ".join(f"{ms[count]:.0f}" for count in sorted(ms, key=int))


def table(results: dict) -> tuple[str, list[str], list[list]]:
    rows = [
        [
            name,
            r["N"],
            f"{r['reference_s'] * 1e3:.0f}",
            f"{r['kdzoo_s'] * 1e3:.0f}",
            f"{r['speedup']:.1f}x",
            f"{r['reference_peak_mib']:.0f}",
            f"{r['kdzoo_peak_mib']:.0f}",
            *(_per_thread(r["sampler_ms"][draw]) for draw in ("distinct", "with_replacement")),
        ]
        for name, r in results.items()
    ]
    headers = [
        "data",
        "N",
        "reference ms",
        "kdzoo ms",
        "speed-up",
        "reference peak MiB",
        "kdzoo peak MiB",
        "sampler ms, distinct",
        "sampler ms, with replacement",
    ]
    return (
        f"CRD criterion, forward + backward, B = {BATCH}, K = {NEGATIVES}, D = {DIM}; sampler: "
        "median ms of one batch's draw, on 1 / all threads",
        headers,
        rows,
    )
