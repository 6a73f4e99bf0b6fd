from __future__ import annotations

import math

import pytest
import torch

from fusion.config import ModelConfig, TrainConfig
from fusion.data import batches, load_split
from fusion.losses import contrastive_loss, negative_weights, total_loss
from fusion.model import MCNCL, PyramidSqueezeAttention, model_from_checkpoint
from tests.tensor_cache import DIMS, LABELS, make_tensor_cache


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    cache = make_tensor_cache(tmp_path_factory.mktemp("cache"))
    return next(batches(load_split(cache, "train", torch.device("cpu")), 16))


def model(**kwargs) -> MCNCL:
    torch.manual_seed(0)
    kwargs = {"context": "none", **kwargs}  # auto is made concrete by training, from the data
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


def test_pyramid_squeeze_attention_is_epsanets():
    torch.manual_seed(0)
    psa = PyramidSqueezeAttention(6, (3, 5, 7), 2)  # 3 groups of 2 channels
    assert [c.in_channels for c in psa.convs] == [2, 2, 2]
    x, mask = torch.randn(2, 9, 6), torch.ones(2, 9, dtype=torch.bool)
    mask[:, 6:] = False
    y, weights = psa(x, mask)
    assert y.shape == x.shape
    assert weights.shape == (2, 3, 2)  # (batch, scales, channels per group)
    assert torch.allclose(weights.sum(1), torch.ones(2, 2))  # softmax across the scales
    x2 = x.clone()
    x2[:, 6:] = 1000.0  # padded frames: neither in the convolutions nor in the squeeze
    y2, weights2 = psa(x2, mask)
    assert torch.allclose(y2[:, :6], y[:, :6], atol=1e-5)
    assert torch.allclose(weights2, weights, atol=1e-6)
    assert (y2[:, 6:] == 0).all()
    odd = PyramidSqueezeAttention(5, (3, 5, 7), 2)  # 5 channels: zero-padded to 3 groups of 2
    assert odd(torch.randn(2, 9, 5), mask)[0].shape == (2, 9, 6) and odd.out_channels == 6


def test_no_pyramid_kernels_is_the_psa_ablation(batch):
    full, ablated = model(), model(pyramid_kernels=())
    assert any(n.startswith("encoders.facial.pyramid.") for n, _ in full.named_parameters())
    assert not any(".pyramid." in n for n, _ in ablated.named_parameters())
    assert ablated.encoders["facial"].project.in_features == DIMS["facial"]
    assert ablated(batch)[0].shape == (16, 3)


def test_concat_differs_from_cross_by_the_cross_attention_only():
    shapes = {n: tuple(p.shape) for n, p in model().named_parameters()}
    concat = {n: tuple(p.shape) for n, p in model(fusion="concat").named_parameters()}
    cross_attention = {n for n in shapes if ".cross." in n or ".n1." in n}
    assert cross_attention and all(n.startswith("layers.") for n in cross_attention)
    assert concat == ({n: s for n, s in shapes.items() if n not in cross_attention}
                      | {"concat.weight": (32, 3 * 32), "concat.bias": (32,)})


def test_contrastive_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    s = (z @ z.T).tolist()  # unit vectors, tau = 1
    # anchors 0 and 1 have one positive each; anchor 2 has none and is left out
    l0 = -math.log(math.exp(s[0][1]) / (math.exp(s[0][1]) + math.exp(s[0][2])))
    l1 = -math.log(math.exp(s[1][0]) / (math.exp(s[1][0]) + math.exp(s[1][2])))
    loss = contrastive_loss(z, labels, 1.0, 0.0)
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    # one negative per anchor: its weight is 1 whatever beta is
    assert contrastive_loss(z, labels, 1.0, 5.0).item() == pytest.approx(loss.item())
    assert contrastive_loss(z, torch.tensor([0, 1, 2]), 1.0, 1.0).item() == 0.0
    # a batch where nobody has the modality (all masked): zero, not an error
    assert contrastive_loss(z[:0], labels[:0], 1.0, 1.0).item() == 0.0


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
    assert contrastive_loss(z, labels, 0.5, 5.0) > contrastive_loss(z, labels, 0.5, 0.0)


def test_dialogue_context_sees_its_dialogue_only(batch):
    net = model(context="past_future")
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


@pytest.mark.parametrize("context", ["past", "past_future"])
def test_past_context_never_reads_later_turns(batch, context: str):
    net = model(context=context)
    logits = net(batch)[0]
    dialogue, turn = batch["dialogue"], batch["turn"]
    i = next(int(j) for j in torch.nonzero(batch["text_present"]) if turn[j] > 0)
    changed = dict(batch)
    changed["text"] = batch["text"].clone()
    changed["text"][i] += 3.0  # a later turn says something else now
    moved = net(changed)[0]
    earlier = (dialogue == dialogue[i]) & (turn < turn[i])
    assert earlier.any() and not torch.allclose(moved[i], logits[i], atol=1e-4)
    assert torch.allclose(moved[earlier], logits[earlier], atol=1e-5) == (context == "past")
    with pytest.raises(ValueError, match="model.context 'yes' is unknown; use auto, none, past"):
        model(context="yes")


def test_a_checkpoint_from_when_context_was_a_bool_loads(batch):
    meta = {"dims": DIMS, "labels": LABELS,
            "normalisation": {"functionals": {"mean": [0.0] * 4}}}
    for old, now in ((True, "past_future"), (False, "none")):
        net = model(context=now)
        config = {**ModelConfig(d_model=32, n_heads=4).__dict__, "context": old}
        loaded = model_from_checkpoint({"model_config": config, "meta": meta,
                                        "state_dict": net.state_dict()})
        assert loaded.config.context == now
        assert torch.allclose(loaded(batch)[0], net(batch)[0])


def test_contrastive_weight_does_not_grow_with_the_number_of_modalities():
    torch.manual_seed(0)
    z, labels = torch.randn(8, 4), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    logits, present = torch.randn(8, 3), torch.ones(8, dtype=torch.bool)
    config = TrainConfig(contrastive_weight=0.5)
    one = total_loss(logits, {"text": z}, {"text": present}, labels, config)
    three = total_loss(logits, dict.fromkeys(DIMS, z), dict.fromkeys(DIMS, present), labels,
                       config)
    assert three.item() == pytest.approx(one.item(), rel=1e-6)
    plain = total_loss(logits, {}, {}, labels, config)
    assert one.item() == pytest.approx(plain.item() + 0.5 * contrastive_loss(
        z, labels, config.temperature, config.hard_negative_beta).item())


def test_no_utterance_is_its_own_positive():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels, ids = torch.tensor([0, 0, 0, 1]), torch.tensor([3, 3, 4, 9])  # row 1 repeats row 0
    s = (z @ z.T).tolist()  # tau = 1
    e = [[math.exp(v) for v in row] for row in s]
    # rows 0 and 1 (utterance 3): the one positive is row 2; their copy is in no sum
    l0 = -math.log(e[0][2] / (e[0][2] + e[0][3]))
    # row 2: both copies of utterance 3 are (other utterances') positives
    l2 = -0.5 * sum(math.log(e[2][p] / (e[2][0] + e[2][1] + e[2][3])) for p in (0, 1))
    loss = contrastive_loss(z, labels, 1.0, 0.0, ids=ids)
    assert loss.item() == pytest.approx((2 * l0 + l2) / 3, rel=1e-5)
    # the anchor itself, at its row among keys it is part of (offset), is never a positive
    alone = contrastive_loss(z[:1], labels[:1], 1.0, 0.0, z, labels, offset=0,
                             ids=ids[:1], key_ids=ids)
    assert alone.item() == pytest.approx(l0, rel=1e-5)
    # through total_loss with the batch's index (the training loop's ids)
    config = TrainConfig(contrastive_weight=1.0, temperature=1.0, hard_negative_beta=0.0)
    logits, present = torch.zeros(4, 2), torch.ones(4, dtype=torch.bool)
    plain = total_loss(logits, {}, {}, labels, config)
    both = total_loss(logits, {"text": z}, {"text": present}, labels, config, ids=ids)
    assert both.item() - plain.item() == pytest.approx((2 * l0 + l2) / 3, rel=1e-5)
