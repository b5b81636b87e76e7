import sys

from lss_jax.cli import main

sys.exit(main())
