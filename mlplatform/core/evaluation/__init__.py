"""The evaluation on the hold-out, one module per subject: metrics with intervals (:mod:`.hold_out_metrics`),
kill criteria, slices, fairness assessment, bias evidence, error analysis, edge cases, cross-validation and
skew. Import from the subject's module."""
