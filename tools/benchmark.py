#!/usr/bin/env python
"""Measure kdzoo's hot paths; print a table and optionally write JSON.

    python tools/benchmark.py [--only crd] [--json out.json] [--quick]

Sections:
- ``crd``: CRD's criterion (scores of student and teacher embeddings against the two banks, Z,
  NCE, backward) at B = 64, K = 16384, D = 128, for N = 50,000 (CIFAR-100) and N = 1,281,167
  (ImageNet): kdzoo's memory-lean scores against a direct evaluation that gathers the
  ``B x (K + 1) x D`` bank rows first, as the reference implementation does. Both compute the same
  loss (checked); time is per forward+backward, peak memory the transient growth above the inputs.

Each measurement runs in a fresh process. Peak memory on CPU is read from the kernel (``VmHWM``
after resetting it through ``/proc/self/clear_refs``) in a run where glibc maps and unmaps every
large allocation, so it follows the live tensors; on CUDA it is ``torch.cuda.max_memory_allocated``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from tabulate import tabulate

from kdzoo.losses.crd import CRDNCELoss
from kdzoo.memory import ClassAwareSampler, gather_scores


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds per call, peak transient MiB) of ``fn``, after one warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident size (VmHWM) to the current one
        base = _rss_kib("VmRSS:") * 1024
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_kib("VmHWM:") * 1024 - base
    return (time.perf_counter() - start) / repeats, max(peak, 0) / 2**20


def crd_inputs(n: int, batch: int, k: int, dim: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 100 if n <= 50_000 else 1000, (n,), generator=generator)
    banks = torch.nn.functional.normalize(torch.randn(2, n, dim, generator=generator), dim=2)
    index = torch.randperm(n, generator=generator)[:batch]
    sampler = ClassAwareSampler(labels, k).to(device)
    return {
        "banks": banks.to(device),
        "idx": sampler(index.to(device), labels[index].to(device)),
        "v_s": torch.randn(batch, dim, generator=generator).to(device),
        "v_t": torch.randn(batch, dim, generator=generator).to(device),
        "nce": CRDNCELoss(n),
        "z": torch.tensor(float(n) * 1.5e-0, device=device),
    }


def crd_loss(inputs: dict, scores: Callable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward + backward of both CRD directions; returns the loss and the embedding gradients."""
    v_s = inputs["v_s"].clone().requires_grad_()
    v_t = inputs["v_t"].clone().requires_grad_()
    s = torch.nn.functional.normalize(v_s, dim=1)
    t = torch.nn.functional.normalize(v_t, dim=1)
    banks, idx, z = inputs["banks"], inputs["idx"], inputs["z"]
    p_s = torch.exp(scores(s, banks[1], idx) / 0.07) / z
    p_t = torch.exp(scores(t, banks[0], idx) / 0.07) / z
    loss = inputs["nce"](p_s) + inputs["nce"](p_t)
    loss.backward()
    return loss.detach(), v_s.grad, v_t.grad


def gathered_scores(v: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The reference's way: copy out the B x (K + 1) x D rows, then batched inner products."""
    rows = torch.index_select(bank, 0, idx.view(-1)).view(*idx.shape, bank.shape[1])
    return torch.bmm(rows, v.unsqueeze(2)).squeeze(2)


def crd_one(n: int, impl: str, device: torch.device, repeats: int) -> dict:
    """Time and peak memory of one implementation at bank size ``n``, plus its loss and gradients
    (saved to compare the two)."""
    inputs = crd_inputs(n, 64, 16384, 128, device)
    scores = gather_scores if impl == "kdzoo" else gathered_scores
    seconds, peak = measure(lambda: crd_loss(inputs, scores), device, repeats)
    return {
        "seconds": seconds,
        "peak_mib": peak,
        "outputs": [t.cpu().tolist() for t in crd_loss(inputs, scores)],
    }


def _in_fresh_process(*worker_args: str, exact_memory: bool = False) -> dict:
    """Run ``--worker ...`` in a new interpreter, so no earlier allocation is reused.

    With ``exact_memory``, glibc serves every allocation above 128 KiB with its own mapping and
    returns it on free, so the resident size follows the live tensors and its peak is the peak of
    the computation (not of the allocator's heap). That slows allocation, so times come from a
    normal run.
    """
    env = dict(os.environ)
    if exact_memory:
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *worker_args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stdout.splitlines()[-1])


def bench_crd(device: torch.device, quick: bool) -> dict:
    results = {}
    sizes = {"cifar100": 50_000} if quick else {"cifar100": 50_000, "imagenet": 1_281_167}
    repeats = "2" if quick else "5"
    runs = {}
    for name, n in sizes.items():
        for impl in ("kdzoo", "reference"):
            args = ("crd", str(n), impl, str(device), repeats)
            timed = _in_fresh_process(*args)
            runs[impl] = {
                "seconds": timed["seconds"],
                "outputs": timed["outputs"],
                "peak_mib": _in_fresh_process(*args, exact_memory=True)["peak_mib"],
            }
        ours, reference = runs["kdzoo"], runs["reference"]
        for a, b in zip(reference["outputs"], ours["outputs"], strict=True):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-6)
        results[name] = {
            "N": n,
            "reference_s": reference["seconds"],
            "kdzoo_s": ours["seconds"],
            "speedup": reference["seconds"] / ours["seconds"],
            "reference_peak_mib": reference["peak_mib"],
            "kdzoo_peak_mib": ours["peak_mib"],
            "memory_ratio": ours["peak_mib"] / reference["peak_mib"],
        }
    return results


SECTIONS = {"crd": bench_crd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), nargs="*", help="sections to run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (tests)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)  # one measurement, inside
    args = parser.parse_args()
    if args.worker:
        _, n, impl, device, repeats = args.worker
        print(json.dumps(crd_one(int(n), impl, torch.device(device), int(repeats))))
        return
    device = torch.device(args.device)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "torch": torch.__version__,
        },
    }
    for name in args.only or sorted(SECTIONS):
        results[name] = SECTIONS[name](device, args.quick)
    if "crd" in results:
        rows = [
            [
                size,
                r["N"],
                f"{r['reference_s'] * 1e3:.0f}",
                f"{r['kdzoo_s'] * 1e3:.0f}",
                f"{r['speedup']:.1f}x",
                f"{r['reference_peak_mib']:.0f}",
                f"{r['kdzoo_peak_mib']:.0f}",
            ]
            for size, r in results["crd"].items()
        ]
        print("CRD criterion, forward + backward, B = 64, K = 16384, D = 128")
        print(
            tabulate(
                rows,
                headers=[
                    "data",
                    "N",
                    "reference ms",
                    "kdzoo ms",
                    "speed-up",
                    "reference peak MiB",
                    "kdzoo peak MiB",
                ],
                tablefmt="github",
            )
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
