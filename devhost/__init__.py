"""Dev hosting: what runs the product locally and is not the product.

The demo, the sandbox (the stand-in seeded through the real SDK clients), the seed helpers, the
Functions-host emulation and the request queue it feeds and drains (``queues``: in Azure the host
alone touches that queue, through function_app.py's bindings). Never deployed (.funcignore) and never
imported by ``importer/``, except by the ``sandbox`` and ``demo`` commands, the one exception named in
``.importlinter``.
"""
