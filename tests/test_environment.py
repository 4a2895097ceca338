"""The pins in pyproject.toml, environment.yml and requirements.lock must agree."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        assert match, f"not an exact pin: {line!r}"
        pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def _pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _pins(project["dependencies"] + project["optional-dependencies"]["test"])


def test_environment_yml_carries_the_same_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    assert _pins(pip_lists[0]) == _pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_lockfile_pins_every_direct_dependency_at_the_same_version():
    text = (ROOT / "requirements.lock").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    lock = _pins(lines)
    for name, version in _pyproject_pins().items():
        assert lock.get(name) == version, f"{name}: pyproject {version}, lock {lock.get(name)}"


def test_torch_and_torchvision_are_a_matching_pair():
    pins = _pyproject_pins()
    torch_minor = int(pins["torch"].split(".")[1])
    assert pins["torchvision"].startswith(f"0.{torch_minor + 15}."), (
        "torchvision 0.(N+15) pairs with torch 2.N"
    )
    assert int(pins["jupyter-book"].split(".")[0]) < 2, (
        "Jupyter Book 2 downloads its theme at build time"
    )
