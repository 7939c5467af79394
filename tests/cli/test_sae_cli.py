import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sae.checkpoint import load_result
from tests.cli.conftest import interrupted_after_first_step

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "engine.sae", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_train_writes_a_checkpoint_and_filters(tmp_path):
    out = run_cli("train", "--source", "builtin", "--patches", "500", "--iterations", "25", "--out", str(tmp_path / "run"),
                  "--filters-png", str(tmp_path / "filters.png"))
    assert out.returncode == 0, out.stderr
    assert "in 25 iterations" in out.stdout
    result, card = load_result(tmp_path / "run")
    assert result.iterations == 25 and "--patches 500" in card["command"]
    assert (tmp_path / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradcheck_passes_and_says_so():
    out = run_cli("gradcheck", "--source", "builtin", "--patches", "200", "--hidden", "9", "--examples", "20")
    assert out.returncode == 0 and "PASS" in out.stdout and "1225 parameters" in out.stdout


def test_bad_settings_exit_2_with_the_reason():
    out = run_cli("train", "--hidden", "0")
    assert out.returncode == 2 and "hidden_size must be between 1 and 400, got 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_dataset_offline_says_where_to_put_it(tmp_path):
    env = {"DLLAB_OFFLINE": "1", "DLLAB_DATA_DIR": str(tmp_path / "empty"), "DLLAB_CACHE": str(tmp_path / "cache")}
    out = run_cli("gradcheck", env=env)
    assert out.returncode == 2
    assert "natural_images/olshausen_raw_tif/01.tif" in out.stderr and "DLLAB_DATA_DIR" in out.stderr


def test_an_image_that_is_not_an_image_exits_2(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not really a photo")
    out = run_cli("gradcheck", "--source", "upload", "--images", str(fake))
    assert out.returncode == 2 and "photo.png is not an image" in out.stderr


@pytest.mark.data
def test_data_dir_argument_is_looked_in_first(tmp_path):
    folder = os.environ["DLLAB_DATA_DIR"]
    env = {"DLLAB_OFFLINE": "1", "DLLAB_DATA_DIR": str(tmp_path / "empty"), "DLLAB_CACHE": str(tmp_path / "cache")}
    out = run_cli("gradcheck", "--data-dir", folder, "--examples", "10", env=env)
    assert out.returncode == 0 and "PASS" in out.stdout


def test_ctrl_c_stops_cleanly_and_keeps_the_result(tmp_path):
    process, _, stderr = interrupted_after_first_step(
        "sae", "train", "--source", "builtin", "--hidden", "100", "--patches", "20000", "--iterations", "2000", "--out", str(tmp_path / "run"),
    )
    assert process.returncode == 0, stderr
    result, _ = load_result(tmp_path / "run")
    assert result.stopped and 0 < result.iterations < 2000
