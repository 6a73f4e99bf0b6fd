from __future__ import annotations

import math

import pytest
import torch

from fusion.config import ModelConfig
from fusion.data import batches, load_split
from fusion.losses import contrastive_loss, negative_weights
from fusion.model import MCNCL, TemporalPyramid
from tests.tensor_cache import DIMS, make_tensor_cache


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    cache = make_tensor_cache(tmp_path_factory.mktemp("cache"))
    return next(batches(load_split(cache, "train", torch.device("cpu")), 16))


def model(**kwargs) -> MCNCL:
    torch.manual_seed(0)
    return MCNCL(ModelConfig(d_model=32, n_heads=4, **kwargs), DIMS, 4, 3).eval()


def test_shapes(batch):
    logits, pooled, present = model()(batch)
    assert logits.shape == (16, 3)
    assert {m: v.shape for m, v in pooled.items()} == {m: (16, 32) for m in DIMS}
    assert all(p.dtype == torch.bool and p.shape == (16,) for p in present.values())


def test_masked_values_change_nothing(batch):
    net = model()
    before = net(batch)[0]
    noisy = dict(batch)
    for m in DIMS:
        noise = torch.randn_like(batch[m].float()) * 100
        noisy[m] = torch.where(batch[f"{m}_mask"].unsqueeze(-1), batch[m].float(), noise)
    assert torch.allclose(net(noisy)[0], before, atol=1e-5)


def test_missing_modality_is_left_out_of_the_fusion(batch):
    net = model()
    gone = dict(batch)
    gone["facial_present"] = torch.zeros_like(batch["facial_present"])
    gone["facial_mask"] = torch.zeros_like(batch["facial_mask"])
    changed = dict(gone)
    changed["facial"] = torch.randn_like(batch["facial"].float())
    assert torch.allclose(net(gone)[0], net(changed)[0], atol=1e-5)
    none_at_all = {**gone, **{f"{m}_{k}": torch.zeros_like(batch[f"{m}_{k}"])
                              for m in DIMS for k in ("mask", "present")}}
    assert torch.isfinite(net(none_at_all)[0]).all()


def test_subsets_and_concat_fusion(batch):
    assert model(modalities=("text",))(batch)[0].shape == (16, 3)
    assert set(model(modalities=("acoustic", "facial"))(batch)[1]) == {"acoustic", "facial"}
    assert model(fusion="concat")(batch)[0].shape == (16, 3)
    with pytest.raises(ValueError, match="model.fusion 'sum' is unknown"):
        model(fusion="sum")
    with pytest.raises(ValueError, match="has none of the features built"):
        MCNCL(ModelConfig(modalities=("facial",)), {"text": 16}, 0, 3)


def test_temporal_pyramid_ignores_masked_frames():
    pyramid = TemporalPyramid(5, (3, 5), 2)
    x, mask = torch.randn(2, 9, 5), torch.ones(2, 9, dtype=torch.bool)
    mask[:, 6:] = False
    y = pyramid(x, mask)
    assert y.shape == (2, 9, 10)
    x2 = x.clone()
    x2[:, 6:] = 1000.0
    assert torch.allclose(pyramid(x2, mask)[:, :5], y[:, :5], atol=1e-5)


def test_contrastive_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    s = (z @ z.T).tolist()  # unit vectors, tau = 1
    # anchors 0 and 1 have one positive each; anchor 2 has none and is left out
    l0 = -math.log(math.exp(s[0][1]) / (math.exp(s[0][1]) + math.exp(s[0][2])))
    l1 = -math.log(math.exp(s[1][0]) / (math.exp(s[1][0]) + math.exp(s[1][2])))
    loss = contrastive_loss(z, labels, 1.0, "none", 0.0)
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    # one negative per anchor: its weight is 1 whatever beta is
    assert contrastive_loss(z, labels, 1.0, "exp", 5.0).item() == pytest.approx(loss.item())
    assert contrastive_loss(z, torch.tensor([0, 1, 2]), 1.0, "exp", 1.0).item() == 0.0
    # a batch where nobody has the modality (all masked): zero, not an error
    assert contrastive_loss(z[:0], labels[:0], 1.0, "exp", 1.0).item() == 0.0


def test_hard_negative_weighting_favours_the_most_similar_negative():
    similarity = torch.tensor([[1.0, 0.9, 0.1, -0.5]])
    negatives = torch.tensor([[False, True, True, True]])
    flat = negative_weights(similarity, negatives, 0.0)
    assert torch.allclose(flat, torch.tensor([[0.0, 1.0, 1.0, 1.0]]))
    hard = negative_weights(similarity, negatives, 2.0)
    assert hard[0, 0] == 0 and hard[0, 1] > 1 > hard[0, 3]
    assert hard[0, 1:].mean().item() == pytest.approx(1.0)
    z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.6], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert (contrastive_loss(z, labels, 0.5, "exp", 5.0)
            > contrastive_loss(z, labels, 0.5, "none", 0.0))


def test_dialogue_context_sees_its_dialogue_only(batch):
    net = model(context=True)
    logits = net(batch)[0]
    shuffled_order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    shuffled = {k: v[shuffled_order] for k, v in batch.items()}
    assert torch.allclose(net(shuffled)[0], logits[shuffled_order], atol=1e-5)  # order-free
    dialogue = batch["dialogue"]
    changed = dict(batch)
    changed["text"] = batch["text"].clone()
    i = int(torch.nonzero(batch["text_present"])[0])
    changed["text"][i] += 3.0  # utterance i says something else now
    moved = net(changed)[0]
    neighbours = (dialogue == dialogue[i]) & (torch.arange(16) != i)
    others = dialogue != dialogue[i]
    assert neighbours.any() and others.any()
    assert not torch.allclose(moved[neighbours], logits[neighbours], atol=1e-4)
    assert torch.allclose(moved[others], logits[others], atol=1e-5)
