"""What went wrong: the failure detectors (``rules``, run by ``detectors``), offline
language identification (``langid``) and the failure patterns (``cluster``).
"""
