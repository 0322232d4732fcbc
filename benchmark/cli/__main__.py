"""``python -m benchmark.cli ...``: the ``leakbench`` command, for where no script is installed or a
launcher runs a module (``torchrun -m benchmark.cli``, the tests' subprocesses, scripts/startup_time.py).
"""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
