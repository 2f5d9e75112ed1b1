# Source: "The Functional API" guide, section "Models with multiple inputs and outputs"
# (ticket priority and department), https://keras.io/guides/functional_api/
# Adapted: 640 generated tickets, 2 epochs, a learnable rule tying inputs to targets.
import numpy as np
import keras
from keras import layers

num_tags = 12  # Number of unique issue tags
num_words = 1000  # Size of vocabulary obtained when preprocessing text data
num_departments = 4  # Number of departments for predictions

title_input = keras.Input(shape=(None,), name="title")  # Variable-length sequence of ints
body_input = keras.Input(shape=(None,), name="body")  # Variable-length sequence of ints
tags_input = keras.Input(shape=(num_tags,), name="tags")  # Binary vectors of size `num_tags`

# Embed each word in the title into a 64-dimensional vector
title_features = layers.Embedding(num_words, 64)(title_input)
# Embed each word in the text into a 64-dimensional vector
body_features = layers.Embedding(num_words, 64)(body_input)

# Reduce sequence of embedded words in the title into a single 128-dimensional vector
title_features = layers.LSTM(32)(title_features)
# Reduce sequence of embedded words in the body into a single 32-dimensional vector
body_features = layers.LSTM(16)(body_features)

# Merge all available features into a single large vector via concatenation
x = layers.concatenate([title_features, body_features, tags_input])

# Stick a logistic regression for priority prediction on top of the features
priority_pred = layers.Dense(1, name="priority")(x)
# Stick a department classifier on top of the features
department_pred = layers.Dense(num_departments, name="department")(x)

# Instantiate an end-to-end model predicting both priority and department
model = keras.Model(
    inputs=[title_input, body_input, tags_input],
    outputs={"priority": priority_pred, "department": department_pred},
)
model.summary()

model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss={
        "priority": keras.losses.BinaryCrossentropy(from_logits=True),
        "department": keras.losses.CategoricalCrossentropy(from_logits=True),
    },
    loss_weights={"priority": 1.0, "department": 0.2},
)

# Dummy input data
rng = np.random.default_rng(0)
title_data = rng.integers(0, num_words, size=(640, 10))
body_data = rng.integers(0, num_words, size=(640, 20))
tags_data = rng.integers(0, 2, size=(640, num_tags)).astype("float32")

# Dummy target data (learnable from the tags)
priority_targets = (tags_data[:, :3].sum(axis=1, keepdims=True) >= 2).astype("float32")
department_targets = keras.utils.to_categorical(tags_data[:, 3:5] @ np.array([1, 2]), num_departments)

history = model.fit(
    {"title": title_data, "body": body_data, "tags": tags_data},
    {"priority": priority_targets, "department": department_targets},
    epochs=3,
    batch_size=32,
)
preds = model.predict({"title": title_data, "body": body_data, "tags": tags_data})
print(sorted(preds), preds["priority"].shape, preds["department"].shape)
priority_acc = float(np.mean((preds["priority"] > 0) == (priority_targets > 0.5)))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"priority_accuracy={priority_acc:.4f}")
