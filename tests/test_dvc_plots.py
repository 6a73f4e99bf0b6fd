"""`dvc plots show` draws the learning curve and the confusion matrix with no network.

DVC's own page loads vega, vega-lite and vega-embed from a CDN; `.dvc/config` points DVC at the
page template `scripts/setup.sh` builds with those libraries inlined. The check runs DVC on two
tiny CSV files in a scratch repository holding the project's config, not the pipeline.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from configobj import ConfigObj
from dvc_render.vega import OPTIONAL_ANCHOR_RANGES, VegaRenderer
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# no network: every host unknown, and anything that still tries goes to a closed port
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           "--disable-background-networking", "--virtual-time-budget=5000"]


def html_template() -> Path:
    """The page template `.dvc/config` names, as DVC resolves it (relative to `.dvc/`)."""
    value = ConfigObj(str(REPO / ".dvc" / "config"))["plots"]["html_template"]
    return REPO / ".dvc" / value


def plot_definitions(corpus: str) -> list[dict]:
    """The stages' plots in the project's dvc.yaml, for one corpus, as top-level plots."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    plots = []
    for stage in stages.values():
        for entry in stage.get("do", stage).get("plots", []):
            for path, props in entry.items():
                props = {k: v for k, v in props.items() if k != "cache"}
                plots.append({path.replace("${key}", corpus): props})
    return plots


def test_the_template_inlines_the_releases_dvc_would_fetch():
    page = html_template()
    assert page.is_file(), f"{page} is missing: run scripts/setup.sh (it builds it from npm)"
    pins = page.read_text(encoding="utf8").split("\n", 1)[0]
    wanted = re.findall(r"npm/(vega[-a-z]*@[\d.]+)", VegaRenderer.SCRIPTS)
    assert len(wanted) == 3 and all(f"{spec} " in pins for spec in wanted), (pins, wanted)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed "
                    "(make test installs it)")
def test_dvc_plots_show_draws_both_plots_offline(tmp_path: Path):
    template = html_template()
    assert template.is_file(), f"{template} is missing: run scripts/setup.sh"
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / ".dvc" / template.name).symlink_to(template)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plot_definitions("c")}))
    models = repo / "data" / "models" / "c"
    models.mkdir(parents=True)
    (models / "train_log.csv").write_text("epoch,train_loss,dev_weighted_f1\n"
                                          "1,1.2,0.2\n2,0.9,0.5\n3,0.7,0.6\n")
    (models / "confusion.csv").write_text("actual,predicted\n" + "joy,joy\n" * 3
                                          + "joy,anger\nanger,anger\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = Path(sys.executable).with_name("dvc")
    shown = subprocess.run([dvc, "plots", "show", "-o", "shown"], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    page = repo / "shown" / "index.html"
    html = page.read_text(encoding="utf8")
    assert "vegaEmbed('#data_models_c_confusion_csv'" in html
    # nothing to fetch: no external script or stylesheet, no CDN address
    assert not re.search(r"<(script|link)\b[^>]*\b(src|href)=", html)
    assert "cdn.jsdelivr" not in html

    shot = tmp_path / "shown.png"
    result = subprocess.run([REPO / "scripts" / "screenshot_report.sh", page, shot, *OFFLINE],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    line = np.array([int(OPTIONAL_ANCHOR_RANGES["color"][0][i:i + 2], 16) for i in (1, 3, 5)])
    near_line = (np.abs(rgb - line).max(axis=-1) < 30).sum()
    # the learning curve: its line in DVC's first colour
    assert near_line > 200, near_line
    # the confusion matrix: its blue heat map (the 3-count cell alone is 100 x 100 pixels)
    blue = ((rgb[..., 2] - rgb[..., 0] > 80) & (np.abs(rgb - line).max(axis=-1) >= 30)).sum()
    assert blue > 5000, blue
