import sys

from shellctr.cli.main import main

sys.exit(main())
