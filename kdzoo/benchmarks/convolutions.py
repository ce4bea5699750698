"""The ceiling a KD step's convolutions set: the step's rate if every other pass were free.

Each convolution of the teacher's forward (eval mode, no gradients) and of the student's forward
and backward is timed alone, at the input and output shapes it has in the step (resnet32x4 ->
resnet8x4, batch 64, channels_last), and their FLOPs over their summed time are set against the
machine's peak. What a step takes beyond that sum is BatchNorm, ReLU, the residual adds, the
loss, the optimizer and the engine: passes over memory, which the compute bound does not count.
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdzoo.modeling import build_backbone

from .roofline import peak_gflops
from .training import PAIR

_BATCH = 64


def convolution_calls(model: torch.nn.Module, x: torch.Tensor) -> list[tuple]:
    """``(conv, input, output)`` of each convolution ``model(x)`` runs, in order."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: calls.append((m, i[0], o)))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def time_convolutions(
    model: torch.nn.Module, x: torch.Tensor, backward: bool, steps: int
) -> tuple[float, int]:
    """Seconds and FLOPs of ``model``'s convolutions on ``x``, each run alone ``steps`` times:
    forward only, or forward and backward (the input's gradient where the step computes it)."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    seconds, flops = 0.0, 0
    for conv, inp, out in convolution_calls(model, x):
        inp = torch.randn_like(inp).requires_grad_(backward and inp.requires_grad)
        grad = torch.randn_like(out)

        def once(conv=conv, inp=inp, grad=grad) -> None:
            with torch.set_grad_enabled(backward):
                y = conv(inp)
                if backward:
                    y.backward(grad)

        with FlopCounterMode(display=False) as counter:
            once()
        flops += counter.get_total_flops()
        once()  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            once()
        sync()
        seconds += (time.perf_counter() - start) / steps
    return seconds, flops


def run(device: torch.device, quick: bool) -> dict:
    teacher_name, student_name = PAIR
    images = torch.randn(_BATCH, 3, 32, 32, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    models = {}
    for name, train in ((teacher_name, False), (student_name, True)):
        model = build_backbone(name).to(device, memory_format=torch.channels_last).train(train)
        models[name] = model.requires_grad_(train)
    steps = 1 if quick else 5
    t_s, t_flops = time_convolutions(models[teacher_name], images, backward=False, steps=steps)
    s_s, s_flops = time_convolutions(models[student_name], images, backward=True, steps=steps)
    peak = peak_gflops(device, torch.float32)
    ceiling = _BATCH / (t_s + s_s)
    return {
        "pair": list(PAIR),
        "peak_gflops_fp32": peak,
        "teacher_forward": {"seconds": t_s, "gflop_s": t_flops / t_s / 1e9},
        "student_forward_backward": {"seconds": s_s, "gflop_s": s_flops / s_s / 1e9},
        "ceiling_img_s": ceiling,
        "ceiling_of_bound": (t_flops + s_flops) / (t_s + s_s) / 1e9 / peak,
    }


def table(results: dict) -> tuple[str, list[str], list[list]]:
    peak = results["peak_gflops_fp32"]
    rows = [
        [part, f"{results[key]['seconds'] * 1e3:.1f}", f"{results[key]['gflop_s'] / peak:.0%}"]
        for part, key in (
            ("teacher forward", "teacher_forward"),
            ("student forward + backward", "student_forward_backward"),
        )
    ]
    rows.append(
        [
            f"KD's ceiling: {results['ceiling_img_s']:.1f} images/s",
            "",
            f"{results['ceiling_of_bound']:.0%}",
        ]
    )
    teacher, student = results["pair"]
    return (
        f"KD's convolutions alone, {teacher} -> {student}, batch {_BATCH}, fp32, channels_last "
        f"(peak {peak:.0f} GFLOP/s)",
        ["", "ms / step", "of the fp32 peak"],
        rows,
    )
