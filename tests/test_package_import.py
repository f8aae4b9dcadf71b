"""`import tfmm` registers every Keras-serializable tfmm class (README: model.keras reloads once
tfmm is imported)."""

import os
import re

import tfmm

PACKAGE_DIR = os.path.dirname(os.path.abspath(tfmm.__file__))


def test_every_module_with_a_serializable_class_is_imported_by_the_package():
    defining = set()
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path) as handle:
                if re.search(r"^@keras\.saving\.register_keras_serializable", handle.read(), re.M):
                    relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))
                    defining.add(relative[:-3].replace(os.sep, "."))
    assert defining and defining <= set(tfmm.SERIALIZABLE_MODULES)
