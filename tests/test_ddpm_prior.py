"""The ZIP prior's recipe at toy size: a run stopped and resumed trains exactly the weights of an
uninterrupted one; an interim export ships the weights reached and keeps the checkpoint; a
finished run's export removes it."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backdoorbook.models.ddpm import DDPMConfig, load_ddpm_artifact
from backdoorbook.recipes import common, ddpm_prior
from backdoorbook.training.checkpoint import load_state

TINY = DDPMConfig(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4)
RECIPE = ddpm_prior.Recipe(steps=4, batch_size=4, warmup_steps=2, checkpoint_every_s=0.0)
RUN = common.RunContext("0" * 40, torch.device("cpu"), 1)


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The recipe on 8×8 random images, with its checkpoints and artifacts under ``tmp_path``."""
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    monkeypatch.setattr(ddpm_prior, "DDPMConfig", lambda: TINY)
    monkeypatch.setattr(
        ddpm_prior, "load_classification", lambda name, split: SimpleNamespace(images=images)
    )
    for module in (ddpm_prior, common):
        monkeypatch.setattr(module, "checkpoint_path", lambda name: tmp_path / f"{name}.ckpt")
    return tmp_path


def test_a_stopped_and_resumed_run_trains_the_weights_of_an_uninterrupted_one(toy):
    torch.set_num_threads(1)
    assert ddpm_prior.train(RECIPE, "whole", progress=False)
    assert not ddpm_prior.train(RECIPE, "parts", max_steps=1, progress=False)
    assert load_state(toy / "parts.ckpt")["meta"]["step"] == 1
    assert ddpm_prior.train(RECIPE, "parts", progress=False)
    whole, parts = load_state(toy / "whole.ckpt"), load_state(toy / "parts.ckpt")
    assert parts["meta"]["step"] == whole["meta"]["step"] == RECIPE.steps
    for key in whole["ema"]:
        torch.testing.assert_close(parts["ema"][key], whole["ema"][key], rtol=0, atol=0)


def test_a_checkpoint_of_another_recipe_is_refused(toy):
    ddpm_prior.train(RECIPE, "prior", max_steps=1, progress=False)
    with pytest.raises(RuntimeError, match="another recipe"):
        ddpm_prior.train(
            ddpm_prior.Recipe(steps=5, batch_size=4, warmup_steps=2), "prior", progress=False
        )


def test_an_interim_export_keeps_the_checkpoint_and_says_how_far_training_got(toy):
    ddpm_prior.train(RECIPE, "prior", max_steps=2, progress=False)
    with pytest.raises(ValueError, match="only an interim export"):
        ddpm_prior.export(RECIPE, "prior", RUN, directory=toy)
    ddpm_prior.export(RECIPE, "prior", RUN, interim=True, directory=toy)
    assert (toy / "prior.ckpt").exists()
    record = json.loads((toy / "prior.provenance.json").read_text())
    assert record["training_status"].startswith("interim: 2 of 4 steps")
    assert record["quality"]["training_images_seen"] == 2 * RECIPE.batch_size
    assert record["replaced_prior_quality"] is None
    load_ddpm_artifact("prior", toy)  # the interim prior loads like any other

    ddpm_prior.train(RECIPE, "prior", progress=False)
    with pytest.raises(ValueError, match="export it in full"):
        ddpm_prior.export(RECIPE, "prior", RUN, interim=True, directory=toy)
    ddpm_prior.export(RECIPE, "prior", RUN, directory=toy)
    assert not (toy / "prior.ckpt").exists()
    record = json.loads((toy / "prior.provenance.json").read_text())
    assert record["training_status"] == "finished"
    assert record["steps"] == RECIPE.steps
    # the interim prior it replaces, measured the same way
    assert set(record["replaced_prior_quality"]) == set(record["quality"]) - {
        "training_images_seen"
    }
