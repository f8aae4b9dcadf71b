"""`python -m tfmm.data_service dispatcher|worker --port N`: a tf.data service server for
`data.service` (`tfmm.data.data_service`)."""

import sys

from tfmm.data.data_service import main

if __name__ == "__main__":
    sys.exit(main())
