# Source: "Text classification from scratch" (Mark Omernick, Francois Chollet),
# https://keras.io/examples/nlp/text_classification_from_scratch/
# Adapted: fortunes (computers vs men-women) instead of IMDB; the TextVectorization step done in
# Python (it needs TensorFlow); vocabulary 3,000, length 100, embedding 32, 8 epochs.
import re
import string
from collections import Counter

import numpy as np
import keras
from keras import layers

max_features = 3000
embedding_dim = 32
sequence_length = 100


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


def custom_standardization(input_data):
    lowercase = input_data.lower()
    stripped_html = lowercase.replace("<br />", " ")
    return re.sub(f"[{re.escape(string.punctuation)}]", "", stripped_html)


texts = load_fortunes("computers")[:500] + load_fortunes("men-women")[:500]
labels = np.array([1] * 500 + [0] * (len(texts) - 500))
tokens = [custom_standardization(t).split() for t in texts]
counts = Counter(w for ws in tokens for w in ws)
vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(max_features - 2))}
x = np.zeros((len(texts), sequence_length), dtype="int64")
for row, ws in enumerate(tokens):
    ids = [vocab.get(w, 1) for w in ws][:sequence_length]
    x[row, : len(ids)] = ids
order = np.random.default_rng(1337).permutation(len(x))
x, labels = x[order], labels[order]
x_train, y_train = x[:700], labels[:700]
x_val, y_val = x[700:850], labels[700:850]
x_test, y_test = x[850:], labels[850:]

# A integer input for vocab indices.
inputs = keras.Input(shape=(None,), dtype="int64")

# Next, we add a layer to map those vocab indices into a space of dimensionality
# 'embedding_dim'.
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)

# Conv1D + global max pooling
x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)

# We add a vanilla hidden layer:
x = layers.Dense(32, activation="relu")(x)
x = layers.Dropout(0.5)(x)

# We project onto a single unit output layer, and squash it with a sigmoid:
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

model = keras.Model(inputs, predictions)

# Compile the model with binary crossentropy loss and an adam optimizer.
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

epochs = 8

# Fit the model using the train and test datasets.
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                    batch_size=32)
loss, accuracy = model.evaluate(x_test, y_test)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={accuracy:.4f}")
