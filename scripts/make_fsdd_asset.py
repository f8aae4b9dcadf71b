"""Builds tfmm's packaged subset of the Free Spoken Digit Dataset (FSDD).

The full FSDD (3,000 WAVs, about 21 MB) is too large to ship inside the package, so
``tfmm/data/assets/fsdd_subset.zip`` holds:

- every test recording (FSDD's convention: index 0-4 of each speaker and digit), and
- the training recordings with index 5..K of each speaker and digit.

The WAV files are stored byte for byte as in FSDD, compressed with LZMA. Usage::

    python scripts/make_fsdd_asset.py --fsdd-dir PATH/TO/fsdd/recordings \\
        --out tfmm/data/assets/fsdd_subset.zip --max-train-index K

``--fsdd-dir`` may point at the ``recordings`` folder or at its parent. Pass
``--max-size-mb`` instead of ``--max-train-index`` to pick the largest K that keeps the
zip under that size. FSDD is licensed CC BY-SA 4.0; see tfmm/data/assets/FSDD_LICENSE.md.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import zipfile

FILE_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
TEST_MAX_INDEX = 4  # FSDD: index 0-4 is the test split
# A fixed timestamp keeps the zip identical from one run to the next.
FIXED_DATE = (2020, 1, 1, 0, 0, 0)


def find_recordings(fsdd_dir: str) -> str:
    sub = os.path.join(fsdd_dir, "recordings")
    return sub if os.path.isdir(sub) else fsdd_dir


def list_wavs(rec_dir: str) -> list[tuple[str, int, str, int]]:
    """(file name, digit, speaker, index) for every FSDD-named WAV, sorted by name."""
    out = []
    for name in sorted(os.listdir(rec_dir)):
        m = FILE_RE.match(name)
        if m:
            out.append((name, int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        raise SystemExit(f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) in {rec_dir}")
    return out


def select(wavs, max_train_index: int) -> list[str]:
    return [name for name, _, _, idx in wavs if idx <= max(max_train_index, TEST_MAX_INDEX)]


def write_zip(rec_dir: str, names: list[str], out: str) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name in names:
            with open(os.path.join(rec_dir, name), "rb") as f:
                data = f.read()
            info = zipfile.ZipInfo(f"recordings/{name}", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_LZMA
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.replace(tmp, out)
    return os.path.getsize(out)


def largest_k(rec_dir: str, wavs, max_bytes: int) -> int:
    """Largest K whose zip stays under max_bytes (binary search, each try writes a zip)."""
    max_index = max(idx for _, _, _, idx in wavs)
    lo, hi = TEST_MAX_INDEX, max_index  # lo: test only (assumed to fit)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.zip")
        if write_zip(rec_dir, select(wavs, lo), path) >= max_bytes:
            raise SystemExit("even the test recordings alone exceed the size limit")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if write_zip(rec_dir, select(wavs, mid), path) < max_bytes:
                lo = mid
            else:
                hi = mid - 1
    return lo


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fsdd-dir", required=True, help="FSDD folder (or its recordings/ folder)")
    p.add_argument("--out", default=os.path.join("tfmm", "data", "assets", "fsdd_subset.zip"))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--max-train-index", type=int, help="keep training recordings 5..K")
    g.add_argument("--max-size-mb", type=float, help="pick the largest K under this size (MB = 1e6 bytes)")
    args = p.parse_args(argv)

    rec_dir = find_recordings(args.fsdd_dir)
    wavs = list_wavs(rec_dir)
    k = args.max_train_index
    if k is None:
        k = largest_k(rec_dir, wavs, int(args.max_size_mb * 1e6))
    names = select(wavs, k)
    size = write_zip(rec_dir, names, args.out)
    n_test = sum(1 for _, _, _, idx in wavs if idx <= TEST_MAX_INDEX)
    print(f"K={k}: {len(names)} recordings ({n_test} test, {len(names) - n_test} train), "
          f"{size} bytes ({size / 1e6:.2f} MB) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
