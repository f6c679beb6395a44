-- Batches are identified by their path relative to the input location (plus their content
-- hash), so a copied, moved or re-mounted input folder is not scored again. Ledger and
-- quarantine rows written before kept the absolute path: keep its file name, the key of a
-- file at the top of the input folder. Older predictions keep the path they were read from
-- in batch_uri (it is not part of their identity).
UPDATE batches SET uri = regexp_extract(uri, '[^/]+$') WHERE uri LIKE '/%';
UPDATE quarantine SET batch_uri = regexp_extract(batch_uri, '[^/]+$') WHERE batch_uri LIKE '/%';
