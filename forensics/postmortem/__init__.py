"""Write it up: the facts a post-mortem states (``facts``), its writing (``writing``), the
document model rendered to Markdown and HTML (``document``) and the regression eval pack
(``evalpack``).
"""
