"""`python -m tfmm.pack MANIFEST OUT_PREFIX --shards N`: a manifest to TFRecord shards and an
index (`tfmm.data.pack`)."""

import sys

from tfmm.data.pack import main

if __name__ == "__main__":
    sys.exit(main())
