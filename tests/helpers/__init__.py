"""Test helpers: tiny BERT presets, manifests and configs, and worker scripts run in subprocesses."""
