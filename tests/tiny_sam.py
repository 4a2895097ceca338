"""The toy SAM configuration the SAM tests build (32 px inputs, two encoder blocks): small enough
for a unit test, with every part of the architecture present."""

from backdoorbook.models.sam import SamConfig

TINY_SAM = SamConfig(
    image_size=32,
    patch_size=4,
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=2,
    window_size=0,
    global_attn_indexes=(),
    prompt_dim=32,
    decoder_heads=2,
    decoder_mlp_dim=64,
    mask_in_chans=4,
    iou_head_hidden_dim=32,
)
