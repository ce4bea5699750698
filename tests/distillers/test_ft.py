"""FT as RepDistiller (commit b84f547) runs it: a pre-training phase that trains the teacher's
paraphraser alone on reconstructing the teacher's last stage output, then CE + 200 x the factor
loss on the student and its translator, the paraphraser frozen; whole losses equal to the
reference's on three pairs; every shipped config; a real run's phases."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdzoo.engine import Trainer, default_argument_parser, default_setup, setup_cfg
from kdzoo.losses import FactorTransferLoss
from kdzoo.model_zoo import list_configs
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import ab_ft_reference as ref
from kdzoo_testing import tiny_run_opts
from kdzoo_testing.runs import Snapshots, enter_phase, metrics, tiny_batch, tiny_distiller

REFERENCE = json.loads((Path(__file__).parents[1] / "losses" / "ab_ft_reference.json").read_text())


def test_init_phase_is_the_reconstruction_error_and_main_phase_ce_plus_200_factor_loss():
    distiller = tiny_distiller("ft", "resnet8", "resnet32x4")
    batch = tiny_batch()
    x = batch["views"][0]
    distiller.phase = "init"
    losses = distiller(batch)
    assert list(losses) == ["loss_paraphraser"]
    with torch.no_grad():
        t = distiller.teacher(x, features=True)
        f_t = t["features"][-2]  # [B, 256, 8, 8], after the ReLU
    _, reconstruction = distiller.paraphraser(f_t)
    torch.testing.assert_close(losses["loss_paraphraser"], F.mse_loss(reconstruction, f_t))

    distiller.phase = "main"
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", "loss_ft"]  # KD_WEIGHT 0 (-a 0)
    s = distiller.student(x, features=True)
    factor_s = distiller.translator(s["features"][-2])  # [B, 128, 8, 8]
    factor_t = distiller.paraphraser.encoder(f_t)
    assert factor_s.shape == factor_t.shape == (4, 128, 8, 8)
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(s["logits"], batch["label"]))
    expected = 200 * FactorTransferLoss()(factor_s, factor_t)
    torch.testing.assert_close(losses["loss_ft"], expected)
    with_kd = tiny_distiller("ft", **{"DISTILLER.FT.KD_WEIGHT": 0.9})
    with_kd.phase = "main"
    assert list(with_kd(batch)) == ["loss_cls", "loss_ft", "loss_kd"]


@pytest.mark.parametrize(
    ("student", "opts", "lr"),
    [
        ("resnet8", {}, 0.01),  # RepDistiller's list: 0.01 (helper/pretrain.py:21-24)
        ("wrn_16_2", {}, 0.01),
        ("vgg8", {}, None),  # SOLVER.BASE_LR, --learning_rate
        ("ShuffleV1", {}, None),
        ("vgg8", {"DISTILLER.FT.INIT_LR": 0.002}, 0.002),
    ],
)
def test_the_pre_training_phase_trains_the_paraphraser_at_the_references_rate(student, opts, lr):
    distiller = tiny_distiller("ft", student, **{"DISTILLER.FT.INIT_EPOCHS": 7, **opts})
    (init,) = distiller.pretraining_phases()
    assert (init.name, init.epochs, init.constant_lr, init.base_lr) == ("init", 7, True, lr)
    assert [id(p) for p in init.parameters] == [id(p) for p in distiller.paraphraser.parameters()]


def test_gradients_reach_exactly_each_phases_parameters():
    distiller = tiny_distiller("ft", "resnet8", "resnet32x4")
    trainable = [p for p in distiller.parameters() if p.requires_grad]
    (init,) = distiller.pretraining_phases()
    enter_phase(distiller, trainable, init)
    sum(distiller(tiny_batch()).values()).backward()
    assert all(p.grad is not None for p in distiller.paraphraser.parameters())
    for module in (distiller.student, distiller.translator, distiller.teacher):
        assert all(p.grad is None for p in module.parameters())

    distiller.zero_grad(set_to_none=True)
    enter_phase(distiller, trainable, distiller.main_phase())
    # Frozen: not in trainable_list (train_student.py:251-253).
    assert not any(p.requires_grad for p in distiller.paraphraser.parameters())
    sum(distiller(tiny_batch()).values()).backward()
    for module in (distiller.student, distiller.translator):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    for module in (distiller.paraphraser, distiller.teacher):
        assert all(p.grad is None for p in module.parameters())


@pytest.mark.parametrize("pair", list(REFERENCE["ft_pairs"]))
def test_the_losses_of_a_whole_pair_equal_repdistiller(pair):
    expected = REFERENCE["ft_pairs"][pair]
    teacher, student = next((t, s) for t, s in ref.FT_PAIRS if f"{t}_{s}" == pair)
    distiller = tiny_distiller("ft", student, teacher).double()
    distiller.teacher.load_state_dict(ref.seeded_state_dict(distiller.teacher, ref.TEACHER_SEED))
    distiller.student.load_state_dict(ref.seeded_state_dict(distiller.student, ref.STUDENT_SEED))
    for module, seed in (
        (distiller.paraphraser, ref.HEAD_SEED),
        (distiller.translator, ref.HEAD_SEED + 1),
    ):
        module.load_state_dict(ref.seeded_state_dict(module, seed))
    images, labels = ref.pair_batch()
    batch = {"views": [images], "label": labels, "index": labels, "epoch": 0}

    def close(got: list, want: list) -> None:
        for a, b in zip(got, want, strict=True):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12), (a, b)

    distiller.phase = "init"
    init = distiller(batch)["loss_paraphraser"]
    close([init.item()], [expected["init_loss"]])
    init.backward()
    close(ref.entries(distiller.paraphraser.encoder[0].weight.grad), expected["init_gradient"])

    distiller.phase = "main"
    distiller.train()
    losses = distiller(batch)
    close(
        [losses["loss_cls"].item(), losses["loss_ft"].item()],
        [expected["loss_cls"], expected["loss_ft"]],
    )
    sum(losses.values()).backward()
    grad = distiller.student.get_parameter(expected["student_parameter"]).grad
    close(ref.entries(grad), expected["student_gradient"])
    close(ref.entries(distiller.translator.encoder[0].weight.grad), expected["translator_gradient"])


def test_a_rate_that_leaves_the_factor_no_channel_is_refused():
    with pytest.raises(ConfigError, match=r"DISTILLER.FT.RATE 0.01: .* 64 channels .* = 0"):
        tiny_distiller("ft", **{"DISTILLER.FT.RATE": 0.01})


SHIPPED = [n for n in list_configs() if n.startswith("cifar100/ft/")]


def test_ships_the_thirteen_pairs():
    kd = {n.replace("/kd/", "/ft/") for n in list_configs() if n.startswith("cifar100/kd/")}
    assert set(SHIPPED) == kd and len(SHIPPED) == 13


@pytest.mark.reliability
def test_a_run_trains_the_paraphraser_then_the_student_and_translator(
    cifar100_slice, random_teacher, tmp_path
):
    # Batches of 1,000 of the 4,000-image slice: 4 iterations of pre-training, then 2 main.
    opts = {
        "DISTILLER.NAME": "ft",
        "DISTILLER.FT.INIT_EPOCHS": 1,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.IMS_PER_BATCH": 1000,
        "SOLVER.MAX_ITER": 2,
        "SOLVER.CHECKPOINT_PERIOD": 10,
        "TEST.EVAL_PERIOD": 10,
        "TEST.MAX_IMAGES": 100,
        "LOG_PERIOD": 1,
    }
    args = default_argument_parser().parse_args(tiny_run_opts(cifar100_slice, tmp_path, **opts))
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = Trainer(cfg)
    start = {k: v.clone() for k, v in trainer.distiller.state_dict().items()}
    snapshots = Snapshots({4, 6})
    trainer.register_hooks([snapshots])
    trainer.resume_or_load(resume=False)
    trainer.train()

    def changed(a: dict, b: dict) -> set[str]:
        """The modules whose weights or biases moved."""
        keys = [k for k in a if k.endswith(("weight", "bias")) and not torch.equal(a[k], b[k])]
        return {k.split(".")[0] for k in keys}

    after_init, after_main = snapshots.states[4], snapshots.states[6]
    assert changed(start, after_init) == {"paraphraser"}
    assert changed(after_init, after_main) == {"student", "translator"}
    lrs = {m["iteration"]: m["lr"] for m in metrics(tmp_path) if "lr" in m}
    assert [lrs[i] for i in range(4)] == [0.01] * 4  # resnet8: RepDistiller's 0.01, constant
    assert lrs[4] == pytest.approx(cfg.SOLVER.BASE_LR)  # the main phase: SOLVER's schedule
