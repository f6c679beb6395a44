"""Reports on a task's warehouse: figures (reliability, buckets, thresholds, label budget,
segments), the HTML report and its Markdown summary, and the analyst views in `sql/views/`.

Every figure function takes plain arrays, draws one PNG with matplotlib (no pyplot, no global backend) and
returns the numbers it drew; `queries` loads those arrays from the warehouse
read-only, through the views.
"""
