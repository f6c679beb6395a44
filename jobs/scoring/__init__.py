"""Scoring: texts in, raw label scores out, from any backend behind one interface.

`scorer` (the Scorer and Backend contracts), `schema` (the score columns, and how partial
distributions are represented), `registry` (backends by name, `make_scorer`), `streaming`
(the one streaming path), `backends/` (one module per backend), `engine/` (the first-token
engine for local transformers models), `prompting` and `verbalizers` (prompts and answer
tokens), `model_loading`, `model_ref`, `fingerprint`, `embedded_model` (the demo model),
`explain` (the explanation tables) and `score_file`.
"""
