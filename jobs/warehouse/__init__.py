"""The DuckDB warehouse: connections that respect its file lock (`connection`), the schema
(`migrations`, `views`), the batch ledger (`ledger`), the single writer of staged batches
(`writer`) and the run lock with provenance (`runs`)."""
