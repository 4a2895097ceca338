import random
import subprocess

import numpy as np
import pytest
import torch

from backdoorbook import runtime
from backdoorbook.book import profiles


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        runtime.seed_everything(bad)


def test_choose_device():
    assert runtime.choose_device("cpu") == torch.device("cpu")
    assert runtime.choose_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(
        ValueError, match="unknown device 'tpu'; choose one of auto, cpu, cuda, mps"
    ):
        runtime.choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            runtime.choose_device("cuda")


def test_set_threads():
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_provenance_helpers():
    versions = runtime.package_versions()
    assert versions["torch"] == torch.__version__.split("+")[0]
    assert "python" in versions
    assert runtime.peak_memory_mb() > 10
    commit = runtime.git_commit()
    assert commit == "unknown" or len(commit.removesuffix("-dirty")) == 40


def test_a_resumed_runs_training_state_does_not_make_the_tree_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / runtime.TRAINING_STATE).mkdir(parents=True)
    state, source = tmp_path / runtime.TRAINING_STATE / "prior.safetensors", tmp_path / "a.py"
    state.write_text("step 1")
    source.write_text("x = 1")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    commit = runtime.git_commit(tmp_path)
    assert len(commit) == 40
    state.write_text("step 2")
    assert runtime.git_commit(tmp_path) == commit
    source.write_text("x = 2")
    assert runtime.git_commit(tmp_path) == commit + "-dirty"


def test_every_chapter_has_ci_and_paper_profiles_that_are_frozen():
    for chapter in profiles.CHAPTERS:
        named = profiles.profile_names(chapter)
        assert {"ci", "paper"} <= set(named), chapter
        ci = named["ci"]
        with pytest.raises(AttributeError):
            ci.__setattr__(next(iter(profiles.profile_as_dict(ci))), None)


def test_unknown_profile_lists_valid_names():
    with pytest.raises(
        profiles.ProfileError,
        match="unknown profile 'huge' for chapter '00_data'; valid profiles: ci, paper",
    ):
        profiles.get_profile("00_data", "huge")
    with pytest.raises(
        profiles.ProfileError, match="unknown chapter '99_x'; chapters with profiles: 00_data"
    ):
        profiles.get_profile("99_x", "ci")
    assert profiles.get_profile("00_data") == profiles.profile_names("00_data")["ci"]


def test_progress_bars_follow_the_request_and_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert runtime.progress_enabled(True) and not runtime.progress_enabled(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not runtime.progress_enabled(True)
