"""Test helpers. The tests' fixtures live in tiny.py (BERT preset, manifests, configs,
subprocesses), tiny_media.py (PNG/WAV bytes) and tiny_squad.py (SQuAD files, vocabularies, the
real QA data); the QA oracles in span_*_oracle.py; scripts that tests run in subprocesses in
compare_replicas.py, mixed_precision_steps.py, replica_masks.py and train_worker.py."""
