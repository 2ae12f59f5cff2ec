# UperNet + satbench backbone, potsdam, 512 x 512 crops, 80k iterations, total batch 8 (see README.md).
_base_ = ['./_base_/upernet_satbench.py', './_base_/datasets/potsdam.py', './_base_/schedule_80k_adamw.py',
          './_base_/runtime.py']
crop_size = (512, 512)
num_classes = 6
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes),
             test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
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
