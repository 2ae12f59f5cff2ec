# UperNet + satbench backbone, vaihingen, 224 x 224 crops (same tiles and resize range as 512; only the
# random crop, the padding size and the sliding-window inference crop change), 80k iterations, batch 8.
_base_ = ['./_base_/upernet_satbench.py', './_base_/datasets/vaihingen.py', './_base_/schedule_80k_adamw.py',
          './_base_/runtime.py']
crop_size = (224, 224)
num_classes = 6
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes),
             test_cfg=dict(mode='slide', crop_size=crop_size, stride=(149, 149)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),  # label 0 (ignore / no-data) -> 255
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
