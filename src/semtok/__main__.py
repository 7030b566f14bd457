import sys

from semtok.cli import main

sys.exit(main())
