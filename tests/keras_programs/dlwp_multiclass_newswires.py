# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 4, "Classifying newswires:
# A multiclass classification example" (listings 4.11-4.21).
# Adapted: 4 fortunes categories instead of Reuters' 46 topics, words indexed in Python;
# 5 epochs.
import re
from collections import Counter

import numpy as np
import keras
from keras import layers
from keras.utils import to_categorical

categories = ["computers", "men-women", "food", "sports"]


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


texts, labels = [], []
for label, category in enumerate(categories):
    entries = load_fortunes(category)[:150]
    texts += entries
    labels += [label] * len(entries)
labels = np.array(labels)
words = [re.findall(r"[a-z']+", t.lower()) for t in texts]
counts = Counter(w for ws in words for w in ws)
word_index = {w: i for i, (w, _) in enumerate(counts.most_common(2000))}
data = [[word_index[w] for w in ws if w in word_index] for ws in words]
order = np.random.default_rng(0).permutation(len(data))
data = [data[i] for i in order]
labels = labels[order]
train_data, train_labels = data[:450], labels[:450]
test_data, test_labels = data[450:], labels[450:]


def vectorize_sequences(sequences, dimension=2000):
    results = np.zeros((len(sequences), dimension))
    for i, sequence in enumerate(sequences):
        for j in sequence:
            results[i, j] = 1.
    return results


x_train = vectorize_sequences(train_data)
x_test = vectorize_sequences(test_data)
y_train = to_categorical(train_labels)
y_test = to_categorical(test_labels)

model = keras.Sequential([
    layers.Dense(64, activation="relu"),
    layers.Dense(64, activation="relu"),
    layers.Dense(len(categories), activation="softmax")
])
model.compile(optimizer="rmsprop",
              loss="categorical_crossentropy",
              metrics=["accuracy"])

x_val = x_train[:100]
partial_x_train = x_train[100:]
y_val = y_train[:100]
partial_y_train = y_train[100:]
history = model.fit(partial_x_train,
                    partial_y_train,
                    epochs=5,
                    batch_size=64,
                    validation_data=(x_val, y_val))
results = model.evaluate(x_test, y_test)
predictions = model.predict(x_test)
print(predictions[0].shape, np.sum(predictions[0]), np.argmax(predictions[0]))

# A different way to handle the labels and the loss
y_train = np.array(train_labels)
model = keras.Sequential([
    layers.Dense(64, activation="relu"),
    layers.Dense(64, activation="relu"),
    layers.Dense(len(categories), activation="softmax")
])
model.compile(optimizer="rmsprop",
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
sparse_history = model.fit(x_train, y_train, epochs=3, batch_size=64)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={results[1]:.4f} sparse_loss={sparse_history.history['loss'][-1]:.4f}")
