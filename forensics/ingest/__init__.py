"""Loading evidence into the case: one file, one transaction, nothing lost.

``load`` runs a load; ``readers`` are the container readers (JSON Lines, CSV, Parquet,
compressed files); ``mapping`` maps source columns onto the canonical tables; ``vendors``
holds one module per source shape (OTLP, OpenInference, Langfuse, LangSmith, LiteLLM,
provider recordings).
"""
