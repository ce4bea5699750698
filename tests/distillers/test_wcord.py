"""WCoRD through the engine: real CIFAR-100 iterations of WCoRD and WCoRD+KD, and its options."""

import pytest
import torch

from kdzoo.checkpoint import load_file
from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import tiny_run_opts
from kdzoo_testing.runs import assert_rows_written, metrics, straight_and_resumed, train_net


@pytest.mark.parametrize(
    "config, extra",
    [
        ("wcord", {}),  # the defaults: inner-product critic
        # WCoRD+KD with a spectrally normalised MLP critic (the resume test below penalises one).
        ("wcord_kd", {"DISTILLER.WCORD.CRITIC": "mlp", "DISTILLER.WCORD.CRITIC_INPUT": "concat"}),
    ],
)
def test_wcord_and_wcord_kd_train_on_real_cifar100(
    cifar100_slice, random_teacher, tmp_path, config, extra
):
    opts = {
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "DISTILLER.MEMORY_BANK.NUM_NEGATIVES": 512,
        **extra,
    }
    result = train_net(
        "--config",
        f"configs/cifar100/{config}/resnet32x4_resnet8x4.yaml",
        *tiny_run_opts(cifar100_slice, tmp_path, **opts),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [m for m in metrics(tmp_path) if "loss_gckt" in m][-1]
    assert line["loss_gckt"] > 0 and line["loss_lckt"] > 0
    assert ("loss_kd" in line) == (config == "wcord_kd")
    state = load_file(str(tmp_path / "model_final.pth"))["model"]
    assert state["memory.banks"].shape == (2, 4000, 128)
    assert_rows_written(state["memory.banks"], cifar100_slice, steps=6)
    assert any(key.startswith("gckt.critic.") for key in state) == (config == "wcord_kd")


def test_resume_with_a_gradient_penalised_critic_is_exact(cifar100_slice, random_teacher, tmp_path):
    # The penalty's interpolation weights come from the global RNG, which checkpoints restore.
    # One thread, as train_net runs its subprocesses: several make these small ops crawl on a
    # loaded 2-core machine.
    torch.set_num_threads(1)
    straight, resumed = straight_and_resumed(
        cifar100_slice,
        tmp_path,
        stop_after=2,
        **{
            "SOLVER.MAX_ITER": 4,
            "TEST.EVAL_PERIOD": 4,
            "DISTILLER.NAME": "wcord",
            "MODEL.TEACHER.NAME": "resnet8",
            "MODEL.TEACHER.WEIGHTS": random_teacher,
            "DISTILLER.MEMORY_BANK.NUM_NEGATIVES": 512,
            "DISTILLER.WCORD.CRITIC": "mlp",
            "DISTILLER.WCORD.LIPSCHITZ": "gradient_penalty",
        },
    )
    a, b = straight["model"], resumed["model"]
    assert a.keys() == b.keys() and "gckt.critic.hidden.weight" in a
    for key in a:
        if not key.endswith("_extra_state"):
            assert torch.equal(a[key], b[key]), key


def test_unknown_option_names_the_key():
    cfg = get_cfg()
    cfg.merge_from_list(["DISTILLER.NAME", "wcord", "DISTILLER.WCORD.CRITIC", "bilinear"])
    cfg.merge_from_list(["MODEL.STUDENT.NAME", "resnet8", "MODEL.TEACHER.NAME", "resnet8"])
    with pytest.raises(ConfigError, match=r"DISTILLER\.WCORD\.CRITIC must be one of"):
        build_distiller(cfg, torch.arange(100), load_weights=False)
    # The bank's options, shared with CRD, are named under DISTILLER.MEMORY_BANK.
    cfg.merge_from_list(
        ["DISTILLER.WCORD.CRITIC", "inner", "DISTILLER.MEMORY_BANK.MODE", "exactly"]
    )
    with pytest.raises(ConfigError, match=r"^DISTILLER\.MEMORY_BANK\.MODE must be one of"):
        build_distiller(cfg, torch.arange(100), load_weights=False)
