# UperNet on a satbench backbone (satbench/seg/backbone.py), 4 tapped blocks -> Feature2Pyramid
# (strides 4/8/16/32: 2 deconvs, 1 deconv, identity, 2x max-pool) -> UPerHead + auxiliary FCNHead.
# The values below are the SatDINO ViT-S/16 defaults; `satbench seg-config` rewrites the model-dependent
# ones (backbone, in_channels, embed_dim, out_indices, mean/std) for any other model.
norm_cfg = dict(type='SyncBN', requires_grad=True)  # reverted to BatchNorm by mmengine when not distributed
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        # The model card's declared normalisation x 255, RGB order (satdino-vit_small-16: 'fmow'
        # mean 0.433 0.436 0.407, std 0.198 0.193 0.195). satbench's rule: the model's normalisation is always applied.
        mean=[110.415, 111.18, 103.785],
        std=[50.49, 49.215, 49.725],
        bgr_to_rgb=True,  # cv2 loads BGR; the model gets the channels in the file's stored order (R,G,B)
        pad_val=0,
        seg_pad_val=255,
        size=(512, 512)),  # padding size = the training crop (set by the top-level config)
    pretrained=None,
    backbone=dict(
        type='SatbenchBackbone',
        model='satdino-vit_small-16',
        weights=None,          # None: the card's official weights (cache, then hub); 'random'; or a file path
        seed=0,
        out_indices=(3, 5, 7, 11),
        norm_layers=True,      # tapped tokens pass through the final LayerNorm (official forward_intermediate_layers)
        frozen=False,          # fine-tuned backbone (True: frozen, eval mode)
        build_options=dict()),
    neck=dict(type='Feature2Pyramid', embed_dim=384, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[384, 384, 384, 384],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    # Sliding-window inference with the training crop (stride = 2/3 crop, mmseg's MAE/BEiT convention),
    # so the ViT always sees crop x crop inputs (and LoveDA's 1024 px tiles stay within SatDINO's official
    # pos-embed interpolation, which stops below 640 px at patch 16).
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
