"""Who was hurt: exact affected users, sessions and events (``exact``), and estimates
from a sampled review with intervals (``estimate``).
"""
