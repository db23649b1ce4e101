"""syndicator: a newsroom feed syndicator.

Sources (archives, feeds, pages) → normalize → dedup → store → render/serve.
See DESIGN.md for the architecture.
"""

__version__ = "0.1.0"
