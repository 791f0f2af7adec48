import sys

from shellctr.cli import main

sys.exit(main())
