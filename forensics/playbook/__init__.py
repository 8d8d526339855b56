"""The incident-response playbook's analytics: the episode of a bad pattern, severity on
the playbook matrix, the detection gap, the containment what-if, milestones, the merged
incident timeline, and all of them in one call (``answers``).
"""
