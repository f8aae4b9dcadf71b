"""The TensorFlow versions tfmm supports: what setup.py admits, what runs, what the TPU notebook installs.

CI runs the default suite on the newest TensorFlow and a selection (this file included) on the
oldest one setup.py admits, 2.20, the newest version that has a TPU build (`tensorflow-tpu`).
"""

import ast
import json
import os
import re

import tensorflow as tf
import tensorflow_text
from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers import tiny


def install_requirements() -> dict:
    """setup.py's install_requires, read from the file (not from a possibly stale install)."""
    with open(os.path.join(tiny.REPO_ROOT, "setup.py")) as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            requirements = [Requirement(item.value) for item in node.value.elts]
            return {requirement.name: requirement for requirement in requirements}
    raise AssertionError("setup.py has no install_requires")


def minor(version: str) -> tuple:
    return Version(version).release[:2]


def test_running_tensorflow_is_one_setup_py_admits():
    requirements = install_requirements()
    assert Version(tf.__version__) in requirements["tensorflow"].specifier
    assert Version(tensorflow_text.__version__) in requirements["tensorflow-text"].specifier
    # tensorflow-text's ops are built against one TensorFlow minor version.
    assert minor(tensorflow_text.__version__) == minor(tf.__version__)


def test_setup_py_admits_the_newest_tpu_build_and_keeps_text_in_step():
    requirements = install_requirements()
    for version in ("2.20.0", "2.21.0"):
        assert Version(version) in requirements["tensorflow"].specifier
        assert Version(version) in requirements["tensorflow-text"].specifier
    assert str(requirements["tensorflow"].specifier) == str(
        requirements["tensorflow-text"].specifier)


def test_tpu_notebook_installs_one_tensorflow_version_setup_py_admits():
    with open(os.path.join(tiny.REPO_ROOT, "notebooks", "tpu_quickstart.ipynb")) as handle:
        notebook = json.load(handle)
    code = "".join("".join(cell["source"]) for cell in notebook["cells"]
                   if cell["cell_type"] == "code")
    pins = dict(re.findall(r'"(tensorflow(?:-tpu|-text)?)==(\d+\.\d+)\.\*"', code))
    assert set(pins) == {"tensorflow", "tensorflow-tpu", "tensorflow-text"}, pins
    assert len(set(pins.values())) == 1, pins
    assert Version(pins["tensorflow-tpu"] + ".0") in install_requirements()["tensorflow"].specifier
