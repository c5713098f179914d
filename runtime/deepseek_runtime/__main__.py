"""`python -m deepseek_runtime ...`: the same as the `deepseek-runtime` console script."""

import sys

from deepseek_runtime.server.cli import main

sys.exit(main())
