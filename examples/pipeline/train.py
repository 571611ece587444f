"""Fit y = w * x + b to prepared/train.csv with gradient descent.

The loss of each epoch goes to metrics.jsonl, one JSON line per epoch
(the op's scalars-file: gage reads it as the run goes).
"""

import csv
import json

lr = 0.05
epochs = 200

with open("prepared/train.csv", newline="") as f:
    data = [(float(x), float(y)) for x, y in list(csv.reader(f))[1:]]

w = b = 0.0
n = len(data)
metrics = open("metrics.jsonl", "w")
for epoch in range(1, epochs + 1):
    dw = sum((w * x + b - y) * x for x, y in data) * 2 / n
    db = sum((w * x + b - y) for x, y in data) * 2 / n
    w -= lr * dw
    b -= lr * db
    loss = sum((w * x + b - y) ** 2 for x, y in data) / n
    metrics.write(json.dumps({"step": epoch, "loss": round(loss, 5)}) + "\n")
    metrics.flush()
    if epoch % max(1, epochs // 5) == 0:
        print(f"epoch {epoch}: loss {loss:.4f}")
metrics.close()

loss = sum((w * x + b - y) ** 2 for x, y in data) / n
with open("model.json", "w") as f:
    json.dump({"w": w, "b": b}, f)
with open("summary.json", "w") as f:
    json.dump({"loss": round(loss, 4), "w": round(w, 4), "b": round(b, 4)}, f)
print(f"model: y = {w:.3f} * x + {b:.3f}")
