# Source: keras.io API docs, "PyDataset class" (keras.utils.PyDataset),
# https://keras.io/api/utils/python_utils/#pydataset-class and the "Training & evaluation with
# the built-in methods" guide, section "Using a PyDataset instance as input",
# https://keras.io/guides/training_with_built_in_methods/
# Adapted: Fashion-MNIST arrays (1,600 images) instead of image files; 2 epochs.
import math

import numpy as np
import keras
from keras import layers


class ExamplePyDataset(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.y = y
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        batch_x = self.x[idx * self.batch_size : (idx + 1) * self.batch_size]
        batch_y = self.y[idx * self.batch_size : (idx + 1) * self.batch_size]
        return batch_x, batch_y


(x_train, y_train), (x_val, y_val) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:1600].reshape(-1, 784).astype("float32") / 255
x_val = x_val[:400].reshape(-1, 784).astype("float32") / 255
y_train, y_val = y_train[:1600], y_val[:400]

train_py_dataset = ExamplePyDataset(x_train, y_train, batch_size=32)
val_py_dataset = ExamplePyDataset(x_val, y_val, batch_size=32)
print(len(train_py_dataset), "batches")

model = keras.Sequential([
    keras.Input(shape=(784,)),
    layers.Dense(64, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
              metrics=["sparse_categorical_accuracy"])
history = model.fit(train_py_dataset, validation_data=val_py_dataset, epochs=2)
val_loss, val_acc = model.evaluate(val_py_dataset)
predictions = model.predict(val_py_dataset)
print(predictions.shape)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"val_accuracy={val_acc:.4f} predictions={predictions.shape[0]}")
