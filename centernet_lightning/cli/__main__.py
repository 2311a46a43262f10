"""``python -m centernet_lightning.cli``: the ``centernet`` command."""

from . import main

main()
