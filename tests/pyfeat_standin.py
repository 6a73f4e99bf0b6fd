"""Write STAND-IN (random-init, correct-shape) weights for py-feat 2.1.5 detectors
into the Hugging Face cache layout that py-feat reads with HF_HUB_OFFLINE=1.

py-feat calls ``huggingface_hub.hf_hub_download(repo_id=..., filename=...,
cache_dir=feat.utils.io.get_resource_path())`` for every model file, so the
files must live at::

    <cache_root>/models--py-feat--<repo>/refs/main           (text: <rev>)
    <cache_root>/models--py-feat--<repo>/snapshots/<rev>/<filename>

where ``<cache_root>`` is normally ``<site-packages>/feat/resources``.
Because ``cache_dir`` is passed explicitly, HF_HOME / HF_HUB_CACHE are ignored.
To use a different directory, call :func:`redirect_feat_resources` (monkeypatches
``get_resource_path`` in every loaded ``feat`` module) *after* importing feat
and *before* constructing a detector.

Usage::

    from make_standin_weights import write_standin_weights, redirect_feat_resources
    write_standin_weights(Path(tmp), "Detectorv2")
    redirect_feat_resources(Path(tmp))
    from feat.detector_v2 import Detectorv2
    det = Detectorv2(device="cpu")

The RetinaFace stand-in is *crafted* (not purely random) so that it returns
exactly ONE detection per frame, independent of image content: a fixed box
``STANDIN_FACE_BOX`` (pixel coords x1, y1, x2, y2) with score ~0.9997.  A purely
random RetinaFace gives hundreds of random boxes, which makes every downstream
model run hundreds of times per frame.  Landmark heads (mobilefacenet,
mp_facemesh stand-in) are biased towards a mean-face template so the geometric
post-processing (HOG alignment, pose) gets sane input.  Everything else is
plain random init.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

# Fixed stand-in face box in *pixel* coordinates of the (padded) input frame.
# Chosen to sit on the face in feat/tests/data/single_face.jpg (572x562) and to
# lie inside a 640x360 video frame.
STANDIN_FACE_BOX = (170.0, 130.0, 390.0, 350.0)
STANDIN_FACE_LOGIT = 8.0  # softmax([0, 8])[1] = 0.99966

DETECTORS = ("Detectorv2", "MPDetector")


# --------------------------------------------------------------------------- #
# HF cache layout helpers
# --------------------------------------------------------------------------- #
def _rev_for(repo_id: str) -> str:
    return hashlib.sha1(f"standin:{repo_id}".encode()).hexdigest()  # 40 hex


def snapshot_dir(cache_root: Path, repo_id: str) -> Path:
    """Create refs/main and return the snapshot folder for ``repo_id``."""
    repo_dir = Path(cache_root) / ("models--" + repo_id.replace("/", "--"))
    rev = _rev_for(repo_id)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)  # no trailing newline (HF style)
    snap = repo_dir / "snapshots" / rev
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _copy_static_resources(cache_root: Path) -> None:
    """cache_root must mirror feat/resources: copy the small non-HF files
    (canonical_face_model.pt, neutral_face_coordinates.csv, region maps...)."""
    import feat

    src = Path(feat.__path__[0]) / "resources"
    for p in src.iterdir():
        if p.is_file():
            dst = Path(cache_root) / p.name
            if not dst.exists():
                shutil.copy2(p, dst)


def _save_safetensors(sd: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    save_file(sd, str(path), metadata=metadata)


# --------------------------------------------------------------------------- #
# Individual stand-ins
# --------------------------------------------------------------------------- #
def _retinaface(cache_root: Path) -> None:
    """py-feat/retinaface_r34 : model.safetensors (fallback name
    retinaface_r34.safetensors).  Loaded by feat.face_detectors.Retinaface.
    Retinaface_test.Retinaface via safetensors.load_file + strict load into
    RetinaFace(RETINAFACE_R34_CFG).

    Crafted so exactly one box fires per frame: FPN level-3 is made a constant
    map of ones, SSH3 turns it into "is there a row above / a column to the
    left" (zero padding => 0 on the first row / column), and the level-3 class
    head only fires at feature-map location (0, 0), anchor 1 (512px prior,
    centred at pixel (16, 16)).  The bbox head bias then moves/resizes that
    prior to STANDIN_FACE_BOX (pixel coordinates, image-size independent)."""
    from feat.face_detectors.Retinaface.Retinaface_model import (
        RETINAFACE_R34_CFG,
        RetinaFace,
    )

    torch.manual_seed(0)
    net = RetinaFace(RETINAFACE_R34_CFG).eval()
    C = RETINAFACE_R34_CFG["out_channel"]  # 128
    var_xy, var_wh = RETINAFACE_R34_CFG["variance"]
    step3 = RETINAFACE_R34_CFG["steps"][2]  # 32
    prior_size = RETINAFACE_R34_CFG["min_sizes"][2][1]  # 512 (anchor 1)
    prior_c = step3 / 2.0  # 16 px

    def set_bn(bn, weight, bias):
        bn.weight.data.fill_(weight)
        bn.bias.data.fill_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)

    with torch.no_grad():
        # FPN output3 -> constant 1 (conv weight 0, BN bias 1, ReLU).
        conv, bn = net.fpn.output3[0], net.fpn.output3[1]
        conv.weight.zero_()
        set_bn(bn, 0.0, 1.0)
        # SSH3: channel 0 = value of the row above, channel 1 = column to the left.
        ssh = net.ssh3
        for block in (ssh.conv3X3, ssh.conv5X5_1, ssh.conv5X5_2, ssh.conv7X7_2, ssh.conv7x7_3):
            block[0].weight.zero_()
            set_bn(block[1], 0.0, 0.0)
        w = ssh.conv3X3[0].weight  # [C/2, C, 3, 3]
        w[0, :, 0, 1] = 1.0 / C  # tap (row-1, col)
        w[1, :, 1, 0] = 1.0 / C  # tap (row, col-1)
        set_bn(ssh.conv3X3[1], 1.0, 0.0)
        # Heads: every level silenced except level 3 / location (0,0) / anchor 1.
        for lvl in range(3):
            for head in (net.ClassHead, net.BboxHead, net.LandmarkHead):
                head._convs[lvl].weight.zero_()
                head._convs[lvl].bias.zero_()
            net.ClassHead._convs[lvl].bias[1] = -20.0  # anchor 0 face logit
            net.ClassHead._convs[lvl].bias[3] = -20.0  # anchor 1 face logit
        cls3 = net.ClassHead._convs[2]
        cls3.bias[3] = STANDIN_FACE_LOGIT
        cls3.weight[3, 0, 0, 0] = -20.0  # row above exists  -> not a face
        cls3.weight[3, 1, 0, 0] = -20.0  # col to left exists -> not a face
        x1, y1, x2, y2 = STANDIN_FACE_BOX
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        box3 = net.BboxHead._convs[2]
        box3.bias[4 + 0] = (cx - prior_c) / (var_xy * prior_size)
        box3.bias[4 + 1] = (cy - prior_c) / (var_xy * prior_size)
        box3.bias[4 + 2] = math.log(bw / prior_size) / var_wh
        box3.bias[4 + 3] = math.log(bh / prior_size) / var_wh

    snap = snapshot_dir(cache_root, "py-feat/retinaface_r34")
    _save_safetensors(net.state_dict(), snap / "model.safetensors")


# Stand-in config for py-feat/face_multitask_v2 (v2.5-style: 20 AU / 7 emotion /
# 52 blendshapes, normalized mesh, v3 heads, no MEFL). The real file's config is
# stored in its safetensors metadata; MultitaskModel rebuilds the net from it.
MULTITASK_STANDIN_CONFIG = dict(
    backbone="convnextv2_tiny.fcmae_ft_in22k_in1k",
    image_size=224,
    n_au=20,
    n_mesh=478,
    n_emotion=7,
    n_blendshape=52,
    mesh_normalized=True,
    bs_use_mesh=True,
    use_head_v3=True,
    drop_mefl=True,
    emotion_use_au_prob=True,
    use_head_v2=False,
    pretrained=False,
)


def _multitask(cache_root: Path) -> None:
    """py-feat/face_multitask_v2 : face_multitask_v28.safetensors, config JSON in
    safetensors metadata['config']; MultitaskModel builds MEGraphAUv2(ModelV2Config(
    **config, pretrained=False)) and load_state_dict(strict=False) but raises on
    any missing/unexpected key."""
    from feat.multitask.inference import HF_REPO, HF_WEIGHTS_FILE
    from feat.multitask.model_v2 import MEGraphAUv2, ModelV2Config

    torch.manual_seed(0)
    model = MEGraphAUv2(ModelV2Config(**MULTITASK_STANDIN_CONFIG)).eval()
    snap = snapshot_dir(cache_root, HF_REPO)
    _save_safetensors(
        model.state_dict(),
        snap / HF_WEIGHTS_FILE,
        metadata={"config": json.dumps(MULTITASK_STANDIN_CONFIG)},
    )


def _arcface(cache_root: Path) -> None:
    """py-feat/arcface_r50 : arcface_r50.safetensors -> ArcFace(backbone='r50').net
    (IResNet-50). num_batches_tracked may be absent (strict=False + check)."""
    from feat.identity_detectors.arcface.arcface_model import ArcFace

    torch.manual_seed(0)
    net = ArcFace(backbone="r50").net
    sd = {k: v for k, v in net.state_dict().items() if "num_batches_tracked" not in k}
    snap = snapshot_dir(cache_root, "py-feat/arcface_r50")
    _save_safetensors(sd, snap / "arcface_r50.safetensors")


def _l2cs(cache_root: Path) -> None:
    """py-feat/l2cs : l2cs_gaze360_resnet50.safetensors -> l2cs_resnet50() (90 bins)."""
    from feat.gaze_detectors.l2cs import l2cs_resnet50

    torch.manual_seed(0)
    m = l2cs_resnet50()
    snap = snapshot_dir(cache_root, "py-feat/l2cs")
    _save_safetensors(m.state_dict(), snap / "l2cs_gaze360_resnet50.safetensors")


class _StandinFaceMesh(nn.Module):
    """Stand-in for MediaPipe's face_landmarks_detector (TorchScript).
    Input [N,3,256,256] in [0,1]; output tuple whose [0] is [N,1,1,1434]
    (478 x (x,y,z), x/y in crop pixels 0..256) like the real model."""

    def __init__(self, template: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 478 * 3)
        self.flag = nn.Linear(8, 1)
        with torch.no_grad():
            self.fc.weight.mul_(0.5)
            self.fc.bias.copy_(template.reshape(-1))

    def forward(self, x: torch.Tensor):
        f = self.pool(torch.relu(self.conv(x))).flatten(1)
        lm = self.fc(f).reshape(-1, 1, 1, 478 * 3)
        flag = torch.sigmoid(self.flag(f)).reshape(-1, 1, 1, 1)
        return lm, flag


def _mp_facemesh(cache_root: Path) -> None:
    """py-feat/mp_facemesh_v2 : face_landmarks_detector.pt = TorchScript module
    (torch.jit.load).  The real one is MediaPipe's converted graph; the stand-in
    is a tiny scripted net whose output bias is MediaPipe's canonical face mesh."""
    import feat

    canon = torch.load(Path(feat.__path__[0]) / "resources" / "canonical_face_model.pt",
                       map_location="cpu", weights_only=True).float()  # [468,3], Y up
    xy = canon[:, :2].clone()
    xy[:, 1] = -xy[:, 1]
    c = xy.mean(0)
    span = (xy.max(0).values - xy.min(0).values).max()
    px = 128.0 + (xy - c) / span * 256.0 * 0.7
    z = canon[:, 2:3] / span * 256.0 * 0.7
    mesh = torch.cat([px, z], dim=1)  # [468, 3]
    # 10 iris points (468-477): eye centres from eyelid corners.
    r_eye = mesh[[33, 133]].mean(0, keepdim=True).repeat(5, 1)
    l_eye = mesh[[362, 263]].mean(0, keepdim=True).repeat(5, 1)
    template = torch.cat([mesh, r_eye, l_eye], dim=0)  # [478, 3]
    torch.manual_seed(0)
    scripted = torch.jit.script(_StandinFaceMesh(template).eval())
    snap = snapshot_dir(cache_root, "py-feat/mp_facemesh_v2")
    scripted.save(str(snap / "face_landmarks_detector.pt"))


def _mp_blendshapes(cache_root: Path) -> None:
    """py-feat/mp_blendshapes : face_blendshapes.pth = torch.save(state_dict) of
    MediaPipeBlendshapesMLPMixer(); torch.load(weights_only=True)."""
    from feat.au_detectors.MP_Blendshapes.MP_Blendshapes_test import (
        MediaPipeBlendshapesMLPMixer,
    )

    torch.manual_seed(0)
    m = MediaPipeBlendshapesMLPMixer()
    snap = snapshot_dir(cache_root, "py-feat/mp_blendshapes")
    torch.save(m.state_dict(), snap / "face_blendshapes.pth")


def _bs_to_au(cache_root: Path) -> None:
    """py-feat/bs_to_au : bs_to_au_pls_v2.npz with coef (52,20), intercept (20,),
    bs_columns (52 MediaPipe names), au_columns (must equal AU_LANDMARK_MAP['Feat'])."""
    from feat.pretrained import AU_LANDMARK_MAP
    from feat.utils import MP_BLENDSHAPE_NAMES

    rng = np.random.default_rng(0)
    snap = snapshot_dir(cache_root, "py-feat/bs_to_au")
    with open(snap / "bs_to_au_pls_v2.npz", "wb") as f:
        np.savez(
            f,
            coef=(rng.standard_normal((52, 20)) * 0.2).astype(np.float32),
            intercept=np.full(20, 0.2, dtype=np.float32),
            bs_columns=np.array(list(MP_BLENDSHAPE_NAMES)),
            au_columns=np.array(list(AU_LANDMARK_MAP["Feat"])),
        )


# detector -> list of writers for its DEFAULT constructor arguments
_WRITERS = {
    "Detectorv2": [_retinaface, _multitask, _arcface],
    "MPDetector": [_retinaface, _mp_facemesh, _mp_blendshapes, _bs_to_au, _arcface, _l2cs],
}


def write_standin_weights(cache_root: Path, detector: str = "Detectorv2") -> None:
    """Write stand-in weights for ``detector`` (default args) into ``cache_root``
    (HF cache layout; mirrors <site-packages>/feat/resources, incl. a copy of the
    small static resource files)."""
    if detector not in _WRITERS:
        raise ValueError(f"detector must be one of {list(_WRITERS)}")
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    _copy_static_resources(cache_root)
    for fn in _WRITERS[detector]:
        fn(cache_root)


def redirect_feat_resources(cache_root: Path) -> None:
    """Point py-feat's resource/HF-cache directory at ``cache_root`` without
    touching site-packages: replaces ``get_resource_path`` in feat.utils.io and in
    every already-imported feat module that bound it via ``from ... import``.
    Call after ``import feat`` and before constructing a detector."""
    import importlib

    cache_root = str(Path(cache_root).resolve())
    for name in ("feat.utils.io", "feat.detector", "feat.detector_v2", "feat.MPDetector"):
        importlib.import_module(name)
    import feat.utils.io as fio

    orig = getattr(fio, "_standin_orig_get_resource_path", fio.get_resource_path)

    def get_resource_path():
        return cache_root

    get_resource_path._standin = True
    fio._standin_orig_get_resource_path = orig
    for mod_name, mod in list(sys.modules.items()):
        if not (mod_name == "feat" or mod_name.startswith("feat.")) or mod is None:
            continue
        cur = getattr(mod, "get_resource_path", None)
        if cur is orig or getattr(cur, "_standin", False):
            mod.get_resource_path = get_resource_path
