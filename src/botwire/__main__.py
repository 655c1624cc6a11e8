"""``python -m botwire``: the ``botwire`` command."""

from .cli import main

raise SystemExit(main())
