"""The feature lists of feature distillers: RepDistiller's ``is_feat=True[, preact=True]`` lists.

``repdistiller_features.json`` holds facts of RepDistiller's own features (its model code, run
outside kdzoo) for a few models of every family, with weights every test can rebuild
(:func:`fixture_state`). Regenerate it with RepDistiller's ``models`` package on disk::

    python tests/modeling/test_feature_contract.py /path/to/RepDistiller COMMIT
"""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from kdzoo.modeling import build_backbone
from kdzoo.modeling.backbone.cifar.shufflenetv1 import channel_shuffle
from kdzoo_testing import CIFAR_MODELS

FIXTURE = Path(__file__).with_name("repdistiller_features.json")
# The models whose features the fixture records, in evaluation mode; a WRN also in training mode,
# where RepDistiller computes its preact features by calling BNs a second time.
FIXTURE_MODELS = [
    "resnet8",
    "resnet8x4",
    "ResNet50",
    "wrn_16_2",
    "vgg8",
    "vgg11",
    "MobileNetV2",
    "ShuffleV1",
    "ShuffleV2",
]
FIXTURE_TRAIN_MODELS = ["wrn_16_2"]
RTOL = 1e-5


def fixture_input() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def fixture_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for ``model``'s keys and shapes, made from those alone (not from any init
    code), so RepDistiller's model and kdzoo's get the same ones. BN statistics are not the
    identity, so evaluation-mode features differ from training-mode ones."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, ref in model.state_dict().items():
        shape = ref.shape
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            state[key] = torch.rand(shape, generator=gen) + 0.5  # BN scale and variance
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 4:  # conv: He init, fan-out
            fan_out = shape[0] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_out) ** 0.5
        else:  # linear
            state[key] = torch.randn(shape, generator=gen) * shape[1] ** -0.5
    return state


def facts(t: torch.Tensor) -> dict:
    """Shape, sum, mean |x|, a position-weighted sum (it sees a channel shuffle) and the first
    four values of one feature (8 significant digits)."""
    shape = t.shape
    t = t.detach().double().flatten()

    def short(v: float) -> float:
        return float(f"{v:.8g}")

    return {
        "shape": list(shape),
        "sum": short(t.sum().item()),
        "mean_abs": short(t.abs().mean().item()),
        "weighted_sum": short((t * torch.linspace(-1, 1, len(t), dtype=t.dtype)).sum().item()),
        "first": [short(v) for v in t[:4].tolist()],
    }


def _kdzoo_model(name: str, training: bool = False) -> nn.Module:
    model = build_backbone(name, num_classes=100)
    model.load_state_dict(fixture_state(model))
    return model.train(training)


# --------------------------------------------------------------------------------------------
# Count, order, shape and the default output, for the whole zoo.


@pytest.mark.parametrize("name", CIFAR_MODELS)
@torch.no_grad()
def test_features_follow_the_contract(name, reference_models):
    ref_shapes = [[2, *s] for s in reference_models[name]["feature_shapes_32x32"]]
    model = build_backbone(name, num_classes=100).eval()
    x = fixture_input()
    plain = model(x)
    with_features = model(x, features=True)
    with_preact = model(x, preact=True)

    # The default call is unchanged; asking adds keys and changes no value.
    assert set(plain) == {"logits", "embedding", "stages"}
    assert set(with_features) == {"logits", "embedding", "stages", "features"}
    assert set(with_preact) == {"logits", "embedding", "stages", "preact_stages", "features"}
    for out in (with_features, with_preact):
        assert torch.equal(out["logits"], plain["logits"])
        assert torch.equal(out["embedding"], plain["embedding"])
        assert len(out["stages"]) == len(plain["stages"])
        for got, want in zip(out["stages"], plain["stages"], strict=True):
            assert torch.equal(got, want)

    # RepDistiller's count, order and shapes; the post-ReLU list is [*stages, embedding].
    post, pre = with_features["features"], with_preact["features"]
    assert [list(f.shape) for f in post] == ref_shapes
    assert [list(f.shape) for f in pre] == ref_shapes
    assert _same_tensors(post, [*with_features["stages"], with_features["embedding"]])
    assert _same_tensors(pre, [*with_preact["preact_stages"], with_preact["embedding"]])


def _same_tensors(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", CIFAR_MODELS)
@torch.no_grad()
def test_preact_stages_are_the_stages_before_their_relu(name):
    model = _kdzoo_model(name)
    out = model(fixture_input(), preact=True)
    stages, preact_stages = out["stages"], out["preact_stages"]
    # The stem is the same tensor in both lists (after its ReLU; the raw conv output for WRN).
    assert preact_stages[0] is stages[0]
    rest = list(zip(stages[1:], preact_stages[1:], strict=True))
    if name == "MobileNetV2":  # RepDistiller ignores preact here
        assert all(pre is stage for stage, pre in rest)
    elif name.startswith("wrn"):  # the BN the next layer applies before its ReLU
        next_bns = [model.block2.layer[0].bn1, model.block3.layer[0].bn1, model.bn1]
        for (stage, pre), bn in zip(rest, next_bns, strict=True):
            assert torch.equal(pre, bn(stage))
    elif name == "ShuffleV2":  # RepDistiller's preact skips the unit's channel shuffle
        for stage, pre in rest:
            assert torch.equal(channel_shuffle(F.relu(pre), 2), stage)
            assert not torch.equal(F.relu(pre), stage)
    else:
        for stage, pre in rest:
            assert torch.equal(F.relu(pre), stage)
    if name != "MobileNetV2":  # the preact features do carry negative values
        assert all((pre < 0).any() for _, pre in rest)


class _OpLog(TorchDispatchMode):
    """Records the ATen ops run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _ops(model: nn.Module, **kwargs) -> list[str]:
    log = _OpLog()
    with torch.no_grad(), log:
        model(torch.empty(2, 3, 32, 32, device="meta"), **kwargs)
    return log.ops


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_the_feature_lists_cost_no_extra_op(name):
    # The lists name tensors the forward pass computes anyway; only ShuffleV2's preact list
    # concatenates its unshuffled halves once per stage.
    model = build_backbone(name, num_classes=100).eval().to("meta")  # ops without compute
    plain = _ops(model)
    assert _ops(model, features=True) == plain
    extra = ["aten.cat.default"] * 3 if name == "ShuffleV2" else []
    assert sorted(_ops(model, preact=True)) == sorted(plain + extra)


# --------------------------------------------------------------------------------------------
# Values against RepDistiller's own code (the fixture).


@pytest.fixture(scope="module")
def repdistiller_features() -> dict:
    return json.loads(FIXTURE.read_text())


def _assert_facts_match(got: list[torch.Tensor], want: list[dict], what: str) -> None:
    assert len(got) == len(want), what
    for i, (tensor, ref) in enumerate(zip(got, want, strict=True)):
        mine = facts(tensor)
        where = f"{what}, feature {i}"
        assert mine["shape"] == ref["shape"], where
        scale = ref["mean_abs"]
        assert mine["mean_abs"] == pytest.approx(scale, rel=RTOL), where
        # Sums of signed values may nearly cancel: compare them on the scale of the terms.
        numel = tensor.numel()
        for key in ("sum", "weighted_sum"):
            assert abs(mine[key] - ref[key]) <= RTOL * (abs(ref[key]) + scale * numel), where
        for a, b in zip(mine["first"], ref["first"], strict=True):
            assert abs(a - b) <= RTOL * (abs(b) + scale), where


def test_fixture_says_how_it_was_made(repdistiller_features):
    about = repdistiller_features["about"]
    assert len(about["repdistiller_commit"]) == 40
    assert set(repdistiller_features["eval"]) == set(FIXTURE_MODELS)
    assert set(repdistiller_features["train"]) == set(FIXTURE_TRAIN_MODELS)


@pytest.mark.parametrize("name", FIXTURE_MODELS)
@torch.no_grad()
def test_features_equal_repdistillers(name, repdistiller_features):
    want = repdistiller_features["eval"][name]
    model = _kdzoo_model(name)
    x = fixture_input()
    pre = want["is_feat_preact"]
    post = [p if f is None else f for f, p in zip(want["is_feat"], pre, strict=True)]
    _assert_facts_match(model(x, features=True)["features"], post, name)
    _assert_facts_match(model(x, preact=True)["features"], pre, f"{name} (preact)")


@pytest.mark.parametrize("name", FIXTURE_TRAIN_MODELS)
def test_training_mode_preact_features_equal_repdistillers(name, repdistiller_features):
    want = repdistiller_features["train"][name]
    model = _kdzoo_model(name, training=True)
    out = model(fixture_input(), preact=True)
    _assert_facts_match(out["features"], want["is_feat_preact"], f"{name} (train)")
    # RepDistiller runs the next stage's BN a second time for the preact feature, counting the
    # batch twice; kdzoo reads the BN output the forward pass computes (docs/decisions.md).
    assert model.block2.layer[0].bn1.num_batches_tracked.item() == 101


# --------------------------------------------------------------------------------------------
# Training: the features backpropagate, and only the asked-for tensors come back.


@pytest.mark.parametrize("name", ["resnet8", "ResNet50", "wrn_16_2", "vgg8", "ShuffleV1"])
def test_preact_features_backpropagate(name):
    model = build_backbone(name, num_classes=100).train()
    out = model(fixture_input(), preact=True)
    (out["logits"].sum() + sum(f.square().mean() for f in out["features"])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnets_give_the_same_feature_list(name):
    model = build_backbone(name, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(x)
        post = model(x, features=True)
        out = model(x, preact=True)
    assert set(plain) == {"logits", "embedding", "stages"}
    assert torch.equal(out["logits"], plain["logits"])
    assert torch.equal(post["logits"], plain["logits"])
    width = 512 if name == "resnet18" else 2048
    # The stem (before the max-pool), layer1 ... layer4, the embedding.
    shapes = [[2, 64, 32, 32], *([2, width // 8 * 2**i, 16 >> i, 16 >> i] for i in range(4))]
    shapes.append([2, width])
    assert [list(f.shape) for f in out["features"]] == shapes
    assert [list(f.shape) for f in post["features"]] == shapes
    assert torch.equal(post["features"][0], out["features"][0])
    layers = zip(plain["stages"], out["preact_stages"], post["features"][1:5], strict=True)
    for stage, pre, post_stage in layers:
        assert torch.equal(F.relu(pre), stage)
        assert torch.equal(post_stage, stage)
        assert (pre < 0).any()
    # The features backpropagate through torchvision's in-place ReLUs.
    out = model.train()(x, preact=True)
    (out["logits"].sum() + sum(f.square().mean() for f in out["features"])).backward()
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Regenerating the fixture (not a test): RepDistiller's own model code, the same weights.


def _write_fixture(repdistiller: Path, commit: str) -> None:
    sys.path.insert(0, str(repdistiller))
    from models import model_dict  # RepDistiller's package

    torch.set_num_threads(2)
    x = fixture_input()
    record: dict = {"eval": {}, "train": {}}
    for name in FIXTURE_MODELS:
        for mode in ("eval", "train"):
            if mode == "train" and name not in FIXTURE_TRAIN_MODELS:
                continue
            make = model_dict[name]
            ref = make(100) if name == "MobileNetV2" else make(num_classes=100)
            ref.load_state_dict(fixture_state(build_backbone(name, num_classes=100)))
            ref.train(mode == "train")
            entry = {}
            with torch.no_grad():
                pre, _ = ref(x, is_feat=True, preact=True)
                if mode == "eval":
                    post, _ = ref(x, is_feat=True, preact=False)
                    pairs = zip(post, pre, strict=True)
                    entry["is_feat"] = [None if torch.equal(a, b) else facts(a) for a, b in pairs]
                entry["is_feat_preact"] = [facts(f) for f in pre]
            record[mode][name] = entry
    about = {
        "how": (
            "RepDistiller's models/ (model_dict[name]) run with this venv's torch "
            f"{torch.__version__}, 2 threads, float32, on fixture_input() "
            "(torch.randn(2, 3, 32, 32), seed 0) with fixture_state() weights (seed 0); "
            "'eval': model.eval(), is_feat=True with preact False and True; 'train': "
            "model.train(), preact=True; null in is_feat: equal to the feature in "
            "is_feat_preact. kdzoo served only for the keys and shapes of the "
            "state_dict. Per feature, in float64: shape, sum, mean |x|, sum weighted by "
            "linspace(-1, 1) over the flattened values, the first 4 values."
        ),
        "repdistiller_commit": commit,
        "regenerate": (
            "python tests/modeling/test_feature_contract.py /path/to/RepDistiller COMMIT"
        ),
    }
    # One line per model: small, and a regenerated file diffs model by model.
    blocks = []
    for mode, entries in record.items():
        lines = [f'  "{n}": {json.dumps(e, separators=(",", ":"))}' for n, e in entries.items()]
        blocks.append(f' "{mode}": {{\n' + ",\n".join(lines) + "\n }")
    text = "{\n" + f' "about": {json.dumps(about, indent=2)},\n' + ",\n".join(blocks) + "\n}\n"
    assert json.loads(text) == {"about": about, **record}
    FIXTURE.write_text(text)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    _write_fixture(Path(sys.argv[1]), sys.argv[2])
