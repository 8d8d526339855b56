-- title: Evidence inventory
-- description: Every loaded file with its sha256, size, format, what it fed, when it was
-- description: loaded, and its record counts (records in = loaded + rejected).
-- needs: evidence
-- empty: no evidence in this case
SELECT evidence_id, path, sha256, bytes, format, target, loader_version, loaded_at,
       records_in, rows_loaded, rows_rejected,
       records_in = rows_loaded + rows_rejected AS balanced
FROM evidence
ORDER BY evidence_id;
