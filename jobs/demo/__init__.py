"""The embedded demo's own data: a seeded generator of labeled texts (`data`, `vocabulary`) and the
check of a demo night against its hidden labels (`evaluation`)."""
