"""``python -m jepa_graph.cli``: the same as the ``jepa-graph`` command."""
import sys

from .main import main

sys.exit(main())
