# Source: "Basic text classification", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/keras/text_classification
# Adapted: fortunes (computers vs men-women) instead of IMDB; the TextVectorization step done in
# Python (Keras's TextVectorization needs TensorFlow); 10 epochs of a small batch.
import re
import string
from collections import Counter

import numpy as np
import keras
from keras import layers
from keras import losses

max_features = 3000
sequence_length = 100


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


def custom_standardization(input_data):
    lowercase = input_data.lower()
    stripped_html = lowercase.replace("<br />", " ")
    return re.sub("[%s]" % re.escape(string.punctuation), "", stripped_html)


texts = load_fortunes("computers")[:500] + load_fortunes("men-women")[:500]
labels = np.array([1] * 500 + [0] * (len(texts) - 500), dtype="float32")
tokens = [custom_standardization(t).split() for t in texts]
counts = Counter(w for ws in tokens for w in ws)
vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(max_features - 2))}
x = np.zeros((len(texts), sequence_length), dtype="int64")
for row, ws in enumerate(tokens):
    ids = [vocab.get(w, 1) for w in ws][:sequence_length]
    x[row, : len(ids)] = ids
order = np.random.default_rng(0).permutation(len(x))
x, labels = x[order], labels[order]
x_train, y_train = x[:700], labels[:700]
x_val, y_val = x[700:850], labels[700:850]
x_test, y_test = x[850:], labels[850:]

embedding_dim = 16

model = keras.Sequential([
    layers.Embedding(max_features, embedding_dim),
    layers.Dropout(0.2),
    layers.GlobalAveragePooling1D(),
    layers.Dropout(0.2),
    layers.Dense(1, activation="sigmoid")])

model.compile(loss=losses.BinaryCrossentropy(),
              optimizer="adam",
              metrics=[keras.metrics.BinaryAccuracy(threshold=0.5)])

epochs = 10
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                    batch_size=32)
model.summary()

loss, accuracy = model.evaluate(x_test, y_test)
print("Loss: ", loss)
print("Accuracy: ", accuracy)

history_dict = history.history
print(history_dict.keys())

export_model = keras.Sequential([model, layers.Activation("sigmoid")])
export_model.compile(loss=losses.BinaryCrossentropy(from_logits=False), optimizer="adam",
                     metrics=["accuracy"])
print(export_model.evaluate(x_test, y_test))
print(f"RESULT first_loss={history_dict['loss'][0]:.4f} loss={history_dict['loss'][-1]:.4f} "
      f"test_accuracy={accuracy:.4f}")
