"""``python -m tempscale_index.cli``: the same as the ``tempscale-index`` command."""

from tempscale_index.cli import main

main()
