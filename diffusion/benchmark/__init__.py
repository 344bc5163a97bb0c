"""The synthetic ground-truth benchmark: seeded identities x motions x cameras rendered with their
``rgb`` ground truth (``dataset``), the "copy the nearest training frame" baseline (``retrieval``)
and the train-on-train / evaluate-on-held-out method harness (``harness``)."""
