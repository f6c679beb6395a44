"""Labels: importing ground truth idempotently with history (`importing`) and drawing weighted audit
samples to label (`audit`)."""
