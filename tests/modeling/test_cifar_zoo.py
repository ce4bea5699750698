"""The CIFAR zoo matches RepDistiller: keys, shapes, parameter counts, features, checkpoints."""

import pytest
import torch
from torch import nn

from kdzoo.modeling import BACKBONE_REGISTRY, build_backbone, probe_backbone
from kdzoo_testing import CIFAR_MODELS


def _random_state_dict(spec: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the keys and shapes of a RepDistiller state_dict."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in spec:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        else:
            state[key] = torch.rand(shape, generator=gen) + 0.5  # positive, valid as BN variances
    return state


def test_registry_lists_the_whole_zoo(reference_models):
    registered = {name for name, _ in BACKBONE_REGISTRY}
    assert set(CIFAR_MODELS) <= registered
    assert set(reference_models) == set(CIFAR_MODELS)


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_state_dict_and_params_match_repdistiller(name, reference_models):
    ref = reference_models[name]
    model = build_backbone(name, num_classes=100)
    assert model.input_size == 32
    got = [[key, list(t.shape)] for key, t in model.state_dict().items()]
    assert got == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_repdistiller_checkpoint_loads_strictly(name, reference_models, tmp_path):
    state = _random_state_dict(reference_models[name]["state_dict"])
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": state}, path)

    model = build_backbone(name, num_classes=100)
    model.load_state_dict(torch.load(path, weights_only=True)["model"], strict=True)
    loaded = model.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key


@pytest.mark.parametrize("name", CIFAR_MODELS)
@torch.no_grad()
def test_forward_contract(name, reference_models):
    ref = reference_models[name]
    model = build_backbone(name, num_classes=100).eval()
    out = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))

    assert set(out) == {"logits", "embedding", "stages"}
    assert out["logits"].shape == (2, 100)
    assert out["embedding"].shape == (2, ref["pooled_feature_dim"])
    assert [list(s.shape) for s in out["stages"]] == [
        [2, *shape] for shape in ref["feature_shapes_32x32"][:-1]
    ]
    assert ref["feature_shapes_32x32"][-1] == [ref["pooled_feature_dim"]]
    # The embedding is exactly what the classifier sees.
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    torch.testing.assert_close(classifier(out["embedding"]), out["logits"])


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_probe_reads_the_pooled_size(name, reference_models):
    ref = reference_models[name]
    dims = probe_backbone(build_backbone(name, num_classes=100))
    assert dims.embedding == ref["pooled_feature_dim"]
    assert [list(s) for s in dims.stages] == ref["feature_shapes_32x32"][:-1]
