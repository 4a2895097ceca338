"""Evaluation: every metric a chapter reports, each returned with its denominator.

- :mod:`.classification`: CA, ASR and PA of classifiers (:class:`Rate` carries ``n``);
- :mod:`.segmentation`: mIoU, CBA, PBA and victim-pixel ASR of segmentation backdoors;
- :mod:`.foreground`: foreground-map quality (IoU, S-measure, E-measure, weighted F, MAE);
- :mod:`.zero_shot`: zero-shot CA and top-k ASR of CLIP-style models;
- :mod:`.purification`: fidelity of purified images (PSNR);
- :mod:`.few_shot`: per-episode accuracy and ASR, and the few-shot confidence interval.
"""
