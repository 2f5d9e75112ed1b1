# Source: "Bidirectional LSTM on IMDB" (fchollet),
# https://keras.io/examples/nlp/bidirectional_lstm_imdb/
# Adapted: fortunes (computers vs men-women) instead of IMDB, tokenized in Python; vocabulary
# 2,000, length 48, 32 units, 2 epochs.
import re
from collections import Counter

import numpy as np
import keras
from keras import layers

max_features = 2000  # Only consider the top 2k words
maxlen = 48  # Only consider the first 48 words of each fortune


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


texts = load_fortunes("computers")[:500] + load_fortunes("men-women")[:500]
labels = np.array([1] * 500 + [0] * (len(texts) - 500))
words = [re.findall(r"[a-z']+", t.lower()) for t in texts]
counts = Counter(w for ws in words for w in ws)
index = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(max_features - 2))}
sequences = [[index.get(w, 1) for w in ws][:maxlen] for ws in words]
order = np.random.default_rng(0).permutation(len(texts))
x = keras.utils.pad_sequences(sequences, maxlen=maxlen)[order]
labels = labels[order]
x_train, y_train, x_val, y_val = x[:800], labels[:800], x[800:], labels[800:]

# Input for variable-length sequences of integers
inputs = keras.Input(shape=(None,), dtype="int32")
# Embed each integer in a 128-dimensional vector
x = layers.Embedding(max_features, 32)(inputs)
# Add 2 bidirectional LSTMs
x = layers.Bidirectional(layers.LSTM(32, return_sequences=True))(x)
x = layers.Bidirectional(layers.LSTM(32))(x)
# Add a classifier
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.summary()

model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=3, validation_data=(x_val, y_val))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"accuracy={history.history['accuracy'][-1]:.4f} val_accuracy={history.history['val_accuracy'][-1]:.4f}")
