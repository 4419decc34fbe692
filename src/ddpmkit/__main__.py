"""``python -m ddpmkit``: the same as the ``ddpmkit`` command."""

from ddpmkit.cli.main import main

raise SystemExit(main())
