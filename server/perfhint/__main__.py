"""`python -m perfhint` is the `perfhint` CLI; `python -m perfhint serve` starts the language server."""

from perfhint.cli import main

raise SystemExit(main())
