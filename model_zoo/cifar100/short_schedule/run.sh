#!/usr/bin/env bash
# Reproduce kdzoo's short-schedule CIFAR-100 table (model_zoo/MODEL_ZOO.md) on one machine:
# the resnet56 teacher, then resnet20 alone and with each distiller, for each seed given.
#   bash model_zoo/cifar100/short_schedule/run.sh DATA_ROOT [SEED ...]     (default seeds: 0 1)
# DATA_ROOT holds cifar100.npz or the torchvision CIFAR-100 download.
set -euo pipefail
root=$1; shift
seeds=${*:-0 1}
cfgs=configs/cifar100/short_schedule
out=output/cifar100/short_schedule
train() { python tools/train_net.py --config "$@" DATASETS.ROOT "$root"; }

[ -f $out/resnet56/model_final.pth ] || train $cfgs/resnet56.yaml SEED 0
for seed in $seeds; do
  for method in vanilla kd crd cocord at sp pkt rkd nst fitnet cc vid kdsvd dkd reviewkd ofd fsp ab ft; do
    dir=$out/seed$seed/${method}_resnet20
    [ -f $dir/model_final.pth ] || train $cfgs/${method}_resnet20.yaml SEED "$seed" OUTPUT_DIR "$dir"
  done
done
