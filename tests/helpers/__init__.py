"""Test helpers: tiny BERT presets, manifests and configs (tiny.py), and scripts that tests run in
subprocesses (compare_replicas.py, train_worker.py)."""
