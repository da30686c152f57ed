"""The packages' lazy exports (``lrrnet``, ``lrrnet.data``), and what importing them costs."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import lrrnet
import lrrnet.data

ROOT = Path(__file__).resolve().parents[1]
LAZY_PACKAGES = (lrrnet, lrrnet.data)

# Optional or slow to import; a plain ``import lrrnet`` must load none of them.
HEAVY = ("onnx", "onnxruntime", "openvino", "matplotlib", "tensorboard", "torch.utils.tensorboard")


@pytest.mark.parametrize(
    ("package", "name"), [(package, name) for package in LAZY_PACKAGES for name in package.__all__]
)
def test_every_exported_name_is_its_module_object(package, name):
    module = importlib.import_module(package._MODULE_OF[name])
    assert getattr(package, name) is getattr(module, name)


@pytest.mark.parametrize("package", LAZY_PACKAGES, ids=lambda package: package.__name__)
def test_all_names_the_lazy_table_and_the_type_checking_imports_alike(package):
    assert sorted(package.__all__) == sorted(package._MODULE_OF)
    tree = ast.parse(Path(package.__file__).read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If))
    imported = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == package._MODULE_OF


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        lrrnet.Trainer  # noqa: B018
    from lrrnet import progress

    assert progress.__name__ == "lrrnet.progress"


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded by ``code`` in a fresh interpreter."""
    probe = f"import sys; {code}; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_no_optional_or_slow_package():
    assert _loaded_after("import lrrnet") == []
    assert _loaded_after("import lrrnet; assert 'torch' not in sys.modules") == []


def test_reading_maps_and_scoring_a_folder_load_no_pytorch():
    # cal_from_mask.py without a CONFIG: PyTorch's import would be a third of its time.
    probe = (
        f"sys.path.insert(0, {str(ROOT)!r}); import cal_from_mask, lrrnet.data.io, "
        "lrrnet.engine.scoring; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    assert "matplotlib" not in _loaded_after(probe)
    from lrrnet.data import dataset  # the package still reaches its submodules

    assert dataset.__name__ == "lrrnet.data.dataset"


def test_using_every_export_loads_no_optional_or_slow_package():
    assert _loaded_after("import lrrnet; [getattr(lrrnet, n) for n in lrrnet.__all__]") == []
