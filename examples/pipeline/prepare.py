"""Split data/raw.csv into prepared/train.csv and prepared/test.csv."""

import csv
import os
import random

test_fraction = 0.2
seed = 42

with open("data/raw.csv", newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]

random.Random(seed).shuffle(rows)
n_test = int(len(rows) * test_fraction)
splits = {"test": rows[:n_test], "train": rows[n_test:]}

os.makedirs("prepared", exist_ok=True)
for name, split in splits.items():
    with open(os.path.join("prepared", name + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(split)
    print(f"{name}: {len(split)} rows")
