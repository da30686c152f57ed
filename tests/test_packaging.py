"""What the project declares matches what its settings use."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_timeout_option_has_its_plugin_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    addopts = project["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--timeout" in addopts
    declared = project["project"]["optional-dependencies"]["test"]
    assert "pytest-timeout" in declared
    assert "pytest-timeout" in (ROOT / "requirements.txt").read_text().split()


def test_requirements_say_how_to_get_the_cpu_build():
    text = (ROOT / "requirements.txt").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
