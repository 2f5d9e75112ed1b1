# Source: "Training & evaluation with the built-in methods" guide (fchollet),
# https://keras.io/guides/training_with_built_in_methods/
# Sections "Using callbacks" (EarlyStopping), "Checkpointing models" (ModelCheckpoint),
# "Using learning rate schedules" (ExponentialDecay), validation_data and validation_split.
# Adapted: Fashion-MNIST, 3,000 images, up to 4 epochs.
import os

import numpy as np
import keras
from keras import layers


def get_compiled_model(optimizer="rmsprop"):
    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    return model


(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:3000].reshape(3000, 784).astype("float32") / 255
x_test = x_test[:1000].reshape(1000, 784).astype("float32") / 255
y_train, y_test = y_train[:3000], y_test[:1000]
x_val, y_val = x_train[-500:], y_train[-500:]
x_train, y_train = x_train[:-500], y_train[:-500]

model = get_compiled_model()
callbacks = [
    keras.callbacks.EarlyStopping(
        # Stop training when `val_loss` is no longer improving
        monitor="val_loss",
        # "no longer improving" being defined as "no better than 1e-2 less"
        min_delta=1e-2,
        # "no longer improving" being further defined as "for at least 2 epochs"
        patience=2,
        verbose=1,
    )
]
history = model.fit(x_train, y_train, epochs=4, batch_size=64, callbacks=callbacks,
                    validation_split=0.2)

model = get_compiled_model()
callbacks = [
    keras.callbacks.ModelCheckpoint(
        # Path where to save the model
        # The two parameters below mean that we will overwrite
        # the current checkpoint if and only if
        # the `val_loss` score has improved.
        # The saved model name will include the current epoch.
        filepath="mymodel_{epoch}.keras",
        save_best_only=True,  # Only save a model if `val_loss` has improved.
        monitor="val_loss",
        verbose=1,
    )
]
model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks,
          validation_data=(x_val, y_val))
saved = sorted(name for name in os.listdir(".") if name.endswith(".keras"))
print("checkpoints:", saved)
restored = keras.models.load_model(saved[-1])
restored_loss, restored_acc = restored.evaluate(x_test, y_test, verbose=0)

initial_learning_rate = 0.1
lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True
)
optimizer = keras.optimizers.RMSprop(learning_rate=1e-3)
model = get_compiled_model(keras.optimizers.SGD(learning_rate=lr_schedule))
sgd_history = model.fit(x_train, y_train, epochs=2, batch_size=64)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"checkpoints={len(saved)} restored_accuracy={restored_acc:.4f} "
      f"sgd_first_loss={sgd_history.history['loss'][0]:.4f} sgd_loss={sgd_history.history['loss'][-1]:.4f}")
