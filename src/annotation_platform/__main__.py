import sys

from annotation_platform.cli import main

sys.exit(main())
