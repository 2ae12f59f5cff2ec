# ISPRS Vaihingen (6 classes; IRRG tiles fed as the 3 channels in stored order NIR,R,G) on mmseg's own dataset class and pipelines (as mmseg's configs/_base_/datasets/vaihingen.py).
# The crop-size dependent training pipeline is in the top-level upernet_<dataset>_<crop>.py files.
dataset_type = 'ISPRSDataset'
data_root = 'data/vaihingen'
num_classes = 6
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# Total training batch 8 images per iteration: 8 per GPU on 1 GPU (satbench run divides it by the
# number of processes; for mmseg's tools with N GPUs use `satbench seg-config --gpus N`).
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=None))  # set by the top-level config (crop-size dependent)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='SatbenchIoUMetric', iou_metrics=['mIoU', 'mFscore'])
test_evaluator = val_evaluator
