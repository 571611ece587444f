"""Score model.json on prepared/test.csv (mean squared error)."""

import csv
import json

with open("model.json") as f:
    model = json.load(f)
with open("prepared/test.csv", newline="") as f:
    data = [(float(x), float(y)) for x, y in list(csv.reader(f))[1:]]

mse = sum((model["w"] * x + model["b"] - y) ** 2 for x, y in data) / len(data)
with open("summary.json", "w") as f:
    json.dump({"test_mse": round(mse, 4), "test_rows": len(data)}, f)
print(f"test mse: {mse:.4f} on {len(data)} rows")
