"""AB's and FT's losses and modules (``kdzoo.losses.ABLoss``, ``FactorTransferLoss``;
``kdzoo.modeling.ABConnector``, ``Paraphraser``, ``Translator``): values worked out by hand on tiny
inputs, and equality with RepDistiller's own ``ABLoss``, ``FactorTransfer``, ``Connector``,
``Paraphraser`` and ``Translator`` on seeded float64 inputs, modules given the same seeded
parameters (numbers stored in ``ab_ft_reference.json``)."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import LOSS_REGISTRY, ABLoss, FactorTransferLoss, build_loss
from kdzoo.modeling import ABConnector, HintRegressor, Paraphraser, Translator
from kdzoo_testing import ab_ft_reference as ref

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def reference():
    """(RepDistiller's stored numbers, the inputs they were computed on)."""
    fixture = json.loads((HERE / "ab_ft_reference.json").read_text())
    inputs = ref.make_inputs()
    for key, total in fixture["input_sums"].items():
        # A different random stream would make the stored numbers meaningless.
        assert math.isclose(inputs[key].sum().item(), total, rel_tol=1e-12), key
    assert fixture["gradient_index"] == ref.GRADIENT_INDEX
    return fixture, inputs


def assert_close(got: float | list, expected: float | list, rel: float = 1e-9) -> None:
    got, expected = (got, expected) if isinstance(got, list) else ([got], [expected])
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-15), (a, b)


def seeded(module: nn.Module, seed: int) -> nn.Module:
    module = module.double()
    module.load_state_dict(ref.seeded_state_dict(module, seed))
    return module


def test_registered():
    assert LOSS_REGISTRY.get("ab") is ABLoss
    assert LOSS_REGISTRY.get("factor_transfer") is FactorTransferLoss
    assert isinstance(build_loss("ab", margin=0.5), ABLoss)
    assert isinstance(build_loss("factor_transfer"), FactorTransferLoss)


# ----------------------------------------------------------------------------- AB


def test_ab_by_hand():
    # One sample, one channel, 1 x 5 positions; margin 1.
    s = torch.tensor([[[[2.0, 0.5, -0.5, -2.0, 0.5]]]])
    t = torch.tensor([[[[1.0, 1.0, -1.0, -1.0, 0.0]]]])
    # t > 0: relu(1 - s)^2 -> 0, 0.25; t <= 0: relu(1 + s)^2 -> 0.25, 0, 2.25 (t = 0 is "off").
    per_map = 0.0 + 0.25 + 0.25 + 0.0 + 2.25
    (loss,) = ABLoss()([s], [t])
    assert loss.item() == pytest.approx(per_map * 3 / 1000)
    # Two layers: the shallower weighs half the deeper; a batch of two divides by two.
    shallow, deep = ABLoss()([s, s], [t, t])
    assert (shallow.item(), deep.item()) == pytest.approx((per_map * 1.5e-3, per_map * 3e-3))
    (batch,) = ABLoss()([torch.cat([s, s])], [torch.cat([t, t])])
    assert batch.item() == pytest.approx(per_map * 3e-3)
    # A margin of 0.5: t > 0: relu(0.5 - s)^2 -> 0, 0; t <= 0: relu(0.5 + s)^2 -> 0, 0, 1.
    (half,) = ABLoss(margin=0.5)([s], [t])
    assert half.item() == pytest.approx(1.0 * 3 / 1000)


@pytest.mark.parametrize("margin", ["1.0", "0.5"])
def test_ab_equals_repdistiller(reference, margin):
    fixture, x = reference
    expected = fixture["ab"][margin]
    g_s = [x[f"ab_s{i}"].clone().requires_grad_(True) for i in range(3)]
    g_t = [x[f"ab_t{i}"] for i in range(3)]
    values = ABLoss(float(margin))(g_s, g_t)
    assert_close([v.item() for v in values], expected["values"])
    sum(values).backward()
    assert_close(ref.entries(g_s[0].grad), expected["gradient"])


def test_ab_connector_and_loss_equal_repdistiller(reference):
    fixture, x = reference
    expected = fixture["ab_connector"]
    g_s = [x[f"con_s{i}"].clone().requires_grad_(True) for i in range(4)]
    g_t = [x[f"con_t{i}"] for i in range(4)]
    shapes = [tuple(f.shape[1:]) for f in g_s], [tuple(f.shape[1:]) for f in g_t]
    connector = seeded(ABConnector(*shapes), ref.MODULE_SEED).train()
    kinds = {"Sequential": nn.Identity, "ConvReg": HintRegressor}
    assert [type(c) for c in connector.connectors] == [kinds[k] for k in expected["kinds"]]
    assert not any(c.relu for c in connector.connectors if isinstance(c, HintRegressor))
    values = ABLoss()(connector(g_s), g_t)
    assert_close([v.item() for v in values], expected["values"])
    sum(values).backward()
    assert_close(ref.entries(g_s[0].grad), expected["student_gradient"])
    assert_close(ref.entries(connector.connectors[3].conv.weight.grad), expected["conv_gradient"])


def test_ab_detaches_the_teacher_and_needs_one_shape_per_pair():
    s = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 5, 2, 2, requires_grad=True)]
    t = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 5, 2, 2, requires_grad=True)]
    sum(ABLoss()(s, t)).backward()
    assert all(f.grad is not None for f in s) and all(f.grad is None for f in t)
    with pytest.raises(ValueError, match="connector must give the teacher's shape"):
        ABLoss()(s, [t[0], torch.randn(2, 4, 2, 2)])
    with pytest.raises(ValueError, match="pairs are needed"):
        ABLoss()(s, t[:1])


def test_ab_under_bfloat16_autocast_is_computed_in_float32():
    s, t = [torch.randn(2, 3, 4, 4).bfloat16()], [torch.randn(2, 3, 4, 4).bfloat16()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (loss,) = ABLoss()(s, t)
    assert loss.dtype == torch.float32
    (expected,) = ABLoss()([s[0].float()], [t[0].float()])
    torch.testing.assert_close(loss, expected)


# ----------------------------------------------------------------------------- FT


def test_factor_transfer_by_hand():
    # One sample, two channels of 1 x 2: mean_c f^2 = [(1 + 9) / 2, (4 + 0) / 2] = [5, 2].
    f_s = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])
    f_t = torch.tensor([[[[2.0, 0.0]]]])  # one channel: [4, 0]
    factor_s = torch.tensor([5.0, 2.0]) / math.sqrt(29)
    factor_t = torch.tensor([1.0, 0.0])
    expected = (factor_s - factor_t).abs().mean()
    assert FactorTransferLoss()(f_s, f_t).item() == pytest.approx(expected.item())
    expected_p2 = (factor_s - factor_t).pow(2).mean()
    assert FactorTransferLoss(p2=2)(f_s, f_t).item() == pytest.approx(expected_p2.item())


def test_factor_transfer_pools_the_larger_map_and_detaches_the_teacher():
    f_s = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    f_t = torch.rand(2, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    loss = FactorTransferLoss()
    pooled = F.avg_pool2d(f_s, 2)
    torch.testing.assert_close(loss(f_s, f_t), loss(pooled, f_t))
    torch.testing.assert_close(loss(f_t, f_s), loss(f_t, pooled))
    loss(f_s, f_t).backward()
    assert f_s.grad is not None and f_t.grad is None


def test_factor_transfer_equals_repdistiller(reference):
    fixture, x = reference
    expected = fixture["factor"]
    for i in range(3):
        f_s = x[f"ft_s{i}"].clone().requires_grad_(True)
        value = FactorTransferLoss()(f_s, x[f"ft_t{i}"])
        assert_close(value.item(), expected["values"][i])
        value.backward()
        assert_close(ref.entries(f_s.grad), expected["gradients"][i])
    f_s = x["ft_s0"].clone().requires_grad_(True)
    value = FactorTransferLoss(p2=2)(f_s, x["ft_t0"])
    assert_close(value.item(), expected["p2_2"]["value"])
    value.backward()
    assert_close(ref.entries(f_s.grad), expected["p2_2"]["gradient"])


def test_paraphraser_and_translator_equal_repdistiller(reference):
    fixture, x = reference
    expected = fixture["paraphraser"]
    f_t = x["para_t"]
    paraphraser = seeded(Paraphraser(f_t.shape[1]), ref.MODULE_SEED).train()
    assert sorted(paraphraser.state_dict()) == expected["keys"]
    factor, reconstruction = paraphraser(f_t)
    assert list(factor.shape) == expected["factor_shape"] == [3, 4, 4, 4]  # int(8 x 0.5)
    assert_close(factor.sum().item(), expected["factor_sum"])
    torch.testing.assert_close(paraphraser.encoder(f_t), factor)
    mse = F.mse_loss(reconstruction, f_t)
    assert_close(mse.item(), expected["mse"])
    mse.backward()
    assert_close(ref.entries(paraphraser.encoder[0].weight.grad), expected["encoder_gradient"])
    assert_close(ref.entries(paraphraser.decoder[6].weight.grad), expected["decoder_gradient"])
    with_bn = seeded(Paraphraser(f_t.shape[1], batch_norm=True), ref.MODULE_SEED).train()
    assert_close(F.mse_loss(with_bn(f_t)[1], f_t).item(), expected["mse_with_bn"])

    paraphraser.eval()
    f_s = x["trans_s"].clone().requires_grad_(True)
    translator = seeded(Translator(f_s.shape[1], f_t.shape[1]), ref.MODULE_SEED + 1).train()
    assert sorted(translator.state_dict()) == expected["translator_keys"]
    with torch.no_grad():
        factor_t = paraphraser.encoder(f_t)
    term = FactorTransferLoss()(translator(f_s), factor_t)
    assert_close(term.item(), expected["factor_term"])
    term.backward()
    assert_close(ref.entries(f_s.grad), expected["student_gradient"])
    assert_close(ref.entries(translator.encoder[0].weight.grad), expected["translator_gradient"])


def test_a_rate_that_leaves_no_factor_is_refused():
    with pytest.raises(ValueError, match="no factor"):
        Paraphraser(3, rate=0.2)
    with pytest.raises(ValueError, match="no factor"):
        Translator(16, 3, rate=0.2)
