"""What changed and which change caused it: declared and inferred changes (``changes``),
change points (``changepoints``), cohort comparisons (``compare``), ranked suspects
(``suspects``) and retrieval diffs (``retrieval``).
"""
