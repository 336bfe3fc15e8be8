"""python -m fewshot_mem.leaderboard"""

import sys

from .cli import main

sys.exit(main())
