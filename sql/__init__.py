"""calscore's SQL: numbered migrations, analyst views and example queries (package data)."""
