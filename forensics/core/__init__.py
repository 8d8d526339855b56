"""The core every stage stands on: the case handle, schema and migrations, SQL helpers
(one identifier-quoting helper), errors, the Result object, statistics, findings,
redaction, metrics and the one resolver of "which events".

Nothing here imports a stage, and nothing here imports the ``Case`` facade.
"""
