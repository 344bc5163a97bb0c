"""Evaluation of generated videos against rendered ground truth (``avatarcine eval``).

- image_metrics: L1, PSNR, SSIM per frame, whole frame / actor / background.
- temporal_metrics: warping error and temporal L1 with the ground-truth flow and depth passes,
  adjacent-frame L1/MSE.
- feature_metrics: LPIPS, CLIP-I, CLIP frame consistency, FID, FVD (user-supplied networks).
- pose_metrics: keypoint error / PCK of a detector, mask IoU of a segmenter.
- evaluate: runs them all in one pass; report: JSON, markdown table, PNG plots.
"""
