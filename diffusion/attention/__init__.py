"""Attention processors (frames attending to other frames, image tokens) and their install/restore
by module name; per-call frame information travels in ``cross_attention_kwargs``."""
