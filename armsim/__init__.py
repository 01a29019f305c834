"""armsim: a local stand-in for the slice of Azure Resource Manager the importer uses.

API Management, Cognitive Services accounts and deployments, and role assignments, served over HTTP
with ARM's wire behaviour (ETags, paging, LROs, errors), plus fault injection, throttling and change
events. Start one with ``armsim.start()``; see docs/sandbox.md.
"""

from armsim.server import Sim, serve_forever, start

__all__ = ["Sim", "serve_forever", "start"]
