# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 4, "Classifying movie
# reviews: A binary classification example" (listings 4.1-4.10).
# Adapted: fortunes (computers vs men-women) instead of IMDB, words indexed in Python;
# 4 epochs.
import re
from collections import Counter

import numpy as np
import keras
from keras import layers


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


texts = load_fortunes("computers")[:500] + load_fortunes("men-women")[:500]
labels = np.array([1] * 500 + [0] * (len(texts) - 500))
words = [re.findall(r"[a-z']+", t.lower()) for t in texts]
counts = Counter(w for ws in words for w in ws)
word_index = {w: i for i, (w, _) in enumerate(counts.most_common(2000))}
data = [[word_index[w] for w in ws if w in word_index] for ws in words]
order = np.random.default_rng(0).permutation(len(data))
data = [data[i] for i in order]
labels = labels[order]
train_data, train_labels = data[:800], labels[:800]
test_data, test_labels = data[800:], labels[800:]


def vectorize_sequences(sequences, dimension=2000):
    results = np.zeros((len(sequences), dimension))
    for i, sequence in enumerate(sequences):
        for j in sequence:
            results[i, j] = 1.
    return results


x_train = vectorize_sequences(train_data)
x_test = vectorize_sequences(test_data)
y_train = np.asarray(train_labels).astype("float32")
y_test = np.asarray(test_labels).astype("float32")

model = keras.Sequential([
    layers.Dense(16, activation="relu"),
    layers.Dense(16, activation="relu"),
    layers.Dense(1, activation="sigmoid")
])
model.compile(optimizer="rmsprop",
              loss="binary_crossentropy",
              metrics=["accuracy"])

x_val = x_train[:200]
partial_x_train = x_train[200:]
y_val = y_train[:200]
partial_y_train = y_train[200:]

history = model.fit(partial_x_train,
                    partial_y_train,
                    epochs=4,
                    batch_size=64,
                    validation_data=(x_val, y_val))
history_dict = history.history
print(history_dict.keys())

results = model.evaluate(x_test, y_test)
print(results)
print(model.predict(x_test)[:3].ravel())
print(f"RESULT first_loss={history_dict['loss'][0]:.4f} loss={history_dict['loss'][-1]:.4f} "
      f"test_accuracy={results[1]:.4f}")
