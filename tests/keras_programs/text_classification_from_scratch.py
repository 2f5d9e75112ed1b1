# Source: "Text classification from scratch" (Mark Omernick, Francois Chollet),
# https://keras.io/examples/nlp/text_classification_from_scratch/
# keras.utils.text_dataset_from_directory (validation_split / subset / seed), a TextVectorization
# layer adapted on the training texts, the example's "Option 1" (vectorization inside the model,
# string inputs), its Embedding / Conv1D / GlobalMaxPooling1D model, fit on the string datasets
# and evaluate on the test set.
# Adapted: the IMDB folder is replaced by fortunes ("computers" vs "men-women") written as one
# .txt file per fortune under train/ (400 each) and test/ (100 each) class folders; vocabulary
# 2,000, sequence length 100, 32 filters, 10 epochs. The example's tf.strings standardization and dataset.map calls are
# TensorFlow; here the default standardize ("lower_and_strip_punctuation") and a NumPy
# concatenation of the training texts for adapt().
# Real Keras 3 runs TextVectorization and text_dataset_from_directory on TensorFlow only, which is
# not installed here: the corpus runs this program on the Keras under test only (NEEDS_TENSORFLOW
# in the test file).
import os
import tempfile

import numpy as np
import keras
from keras import layers


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


base_dir = os.path.join(tempfile.mkdtemp(), "fortunes")
for category in ["computers", "men-women"]:
    texts = load_fortunes(category)[:500]
    for split, part in [("train", texts[:400]), ("test", texts[400:])]:
        os.makedirs(os.path.join(base_dir, split, category))
        for i, text in enumerate(part):
            with open(os.path.join(base_dir, split, category, f"{i}.txt"), "w") as f:
                f.write(text)

batch_size = 32
raw_train_ds = keras.utils.text_dataset_from_directory(
    os.path.join(base_dir, "train"),
    batch_size=batch_size,
    validation_split=0.2,
    subset="training",
    seed=1337,
)
raw_val_ds = keras.utils.text_dataset_from_directory(
    os.path.join(base_dir, "train"),
    batch_size=batch_size,
    validation_split=0.2,
    subset="validation",
    seed=1337,
)
raw_test_ds = keras.utils.text_dataset_from_directory(
    os.path.join(base_dir, "test"), batch_size=batch_size
)

print(f"Number of batches in raw_train_ds: {len(raw_train_ds)}")
print(f"Number of batches in raw_val_ds: {len(raw_val_ds)}")
print(f"Number of batches in raw_test_ds: {len(raw_test_ds)}")

# It's important to take a look at your raw data to ensure your normalization
# and tokenization will work as expected.
for text_batch, label_batch in raw_train_ds:
    for i in range(3):
        print(text_batch[i])
        print(label_batch[i])
    break

# Model constants.
max_features = 2000
embedding_dim = 32
sequence_length = 100

# Now that we have our custom standardization, we can instantiate our text
# vectorization layer. We are using this layer to normalize, split, and map
# strings to integers, so we set our 'output_mode' to 'int'.
vectorize_layer = layers.TextVectorization(
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)

# Now that the vectorize_layer has been created, call `adapt` on a text-only
# dataset to create the vocabulary.
text_ds = np.concatenate([x for x, _ in raw_train_ds])
vectorize_layer.adapt(text_ds)
vocabulary = vectorize_layer.get_vocabulary()
print("vocabulary:", len(vocabulary), vocabulary[:10])

# A string input
text_input = keras.Input(shape=(1,), dtype="string", name="text")
x = vectorize_layer(text_input)
x = layers.Embedding(max_features, embedding_dim)(x)
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

model = keras.Model(text_input, predictions)

# Compile the model with binary crossentropy loss and an adam optimizer.
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()

epochs = 10

# Fit the model using the train and test datasets.
history = model.fit(raw_train_ds, validation_data=raw_val_ds, epochs=epochs)

loss, accuracy = model.evaluate(raw_test_ds)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={accuracy:.4f} vocabulary={len(vocabulary)} "
      f"train_batches={len(raw_train_ds)} val_batches={len(raw_val_ds)} "
      f"test_batches={len(raw_test_ds)}")
