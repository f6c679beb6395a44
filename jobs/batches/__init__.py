"""Input batches: finding and reading Parquet files (`files`), quarantining rows that cannot be
scored (`quarantine`), and scoring one batch into a staged result (`stage`, `staged`) for the writer.
Nothing here opens the warehouse."""
