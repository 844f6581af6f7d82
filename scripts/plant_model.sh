#!/usr/bin/env bash
# Make models/plant from nothing and store its measured figures: draw the leaf set, train
# the camera DS-CNN, convert it to full int8, generate its C (checked bit for bit against
# TFLite Micro on 1,000 random inputs), and evaluate it on TFLite Micro on the held-out
# leaves and on the same leaves as a PlantVillage-layout folder of 256x256 JPEGs (the
# loader's path), then export its drift monitor's config. About 8 minutes on 2 cores. Run scripts/setup.sh once before.
set -euo pipefail
cd "$(dirname "$0")/.."
TD=.venv/bin/tinydrift
DATA=build/data/plant
MODEL=models/plant

$TD data plant --out "$DATA"
$TD train --data "$DATA" --out "$MODEL"
$TD quantize --data "$DATA" --model "$MODEL"
$TD model-c "$MODEL/model_int8.tflite" --name plant --out "$MODEL/include" --check 1000
$TD export --model "$MODEL" --data "$DATA" --name plant
$TD eval "$MODEL" "$DATA/test.npz" --json > docs/figures/plant_eval_test.json
rm -rf build/plant_folder
.venv/bin/python - "$DATA/test.npz" build/plant_folder <<'PY'
import sys
from pathlib import Path

from PIL import Image

from tinydrift.data.imageset import ImageSet

test, out = ImageSet.load(sys.argv[1]), Path(sys.argv[2])
for i, (image, label) in enumerate(zip(test.images, test.labels)):
    path = out / test.label_names[label] / f"leaf{i:04d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).resize((256, 256), Image.Resampling.BICUBIC).save(path, quality=90)
PY
$TD eval "$MODEL" build/plant_folder --json > docs/figures/plant_eval_folder.json
