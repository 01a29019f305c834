"""Dev hosting: what runs the product locally and is not the product.

The demo, the sandbox (the stand-in seeded through the real SDK clients), the seed helpers and the
Functions-host emulation. Never deployed (.funcignore) and never imported by ``importer/``, except by
the ``sandbox`` and ``demo`` commands, the one exception named in ``.importlinter``.
"""
