# Source: "Hands-On Machine Learning with Scikit-Learn, Keras, and TensorFlow" (A. Geron, 3rd ed.),
# chapter 11, "Learning Rate Scheduling": exponential decay per batch in a custom callback
# (on_batch_begin), power scheduling via the optimizer's schedule, the 1cycle scheduler
# (OneCycleScheduler, on_batch_begin), piecewise constant scheduling with
# LearningRateScheduler, and batch normalization / SELU MLPs on Fashion-MNIST.
# Adapted: Keras 3 sets the rate with `optimizer.learning_rate = lr` (Keras 3 has no
# keras.backend.set_value); 1,000 images, 2 epochs each.
import math

import numpy as np
import keras

(X_train_full, y_train_full), (X_test, y_test) = keras.datasets.fashion_mnist.load_data()
X_train_full = X_train_full / 255.0
X_train, y_train = X_train_full[:1000], y_train_full[:1000]
X_valid, y_valid = X_train_full[-500:], y_train_full[-500:]
X_test = X_test / 255.0


def build_model(seed=42):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.layers.Flatten(input_shape=[28, 28]),
        keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dense(10, activation="softmax")
    ])


class ExponentialDecay(keras.callbacks.Callback):
    def __init__(self, n_steps=40_000):
        super().__init__()
        self.n_steps = n_steps

    def on_batch_begin(self, batch, logs=None):
        # Note: the `batch` argument is reset at each epoch
        lr = float(self.model.optimizer.learning_rate)
        new_learning_rate = lr * 0.1 ** (1 / self.n_steps)
        self.model.optimizer.learning_rate = new_learning_rate

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["lr"] = float(self.model.optimizer.learning_rate)


lr0 = 0.01
model = build_model()
optimizer = keras.optimizers.SGD(learning_rate=lr0)
model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
n_epochs = 2
batch_size = 32
n_steps = n_epochs * math.ceil(len(X_train) / batch_size)
exp_decay = ExponentialDecay(n_steps)
history = model.fit(X_train, y_train, epochs=n_epochs, validation_data=(X_valid, y_valid),
                    callbacks=[exp_decay])
exp_decay_lr = history.history["lr"][-1]
print("learning rate after exponential decay:", exp_decay_lr)  # about lr0 / 10


class OneCycleScheduler(keras.callbacks.Callback):
    def __init__(self, iterations, max_lr=1e-3, start_lr=None,
                 last_iterations=None, last_lr=None):
        self.iterations = iterations
        self.max_lr = max_lr
        self.start_lr = start_lr or max_lr / 10
        self.last_iterations = last_iterations or iterations // 10 + 1
        self.half_iteration = (iterations - self.last_iterations) // 2
        self.last_lr = last_lr or self.start_lr / 1000
        self.iteration = 0
        self.rates = []

    def _interpolate(self, iter1, iter2, lr1, lr2):
        return (lr2 - lr1) * (self.iteration - iter1) / (iter2 - iter1) + lr1

    def on_batch_begin(self, batch, logs):
        if self.iteration < self.half_iteration:
            lr = self._interpolate(0, self.half_iteration, self.start_lr, self.max_lr)
        elif self.iteration < 2 * self.half_iteration:
            lr = self._interpolate(self.half_iteration, 2 * self.half_iteration,
                                   self.max_lr, self.start_lr)
        else:
            lr = self._interpolate(2 * self.half_iteration, self.iterations,
                                   self.start_lr, self.last_lr)
        self.iteration += 1
        self.rates.append(lr)
        self.model.optimizer.learning_rate = lr


model = build_model()
model.compile(loss="sparse_categorical_crossentropy",
              optimizer=keras.optimizers.SGD(), metrics=["accuracy"])
n_epochs = 2
onecycle = OneCycleScheduler(math.ceil(len(X_train) / batch_size) * n_epochs, max_lr=0.1)
history = model.fit(X_train, y_train, epochs=n_epochs, batch_size=batch_size,
                    validation_data=(X_valid, y_valid), callbacks=[onecycle])
print("1cycle: rates from", onecycle.rates[0], "to max", max(onecycle.rates), "to",
      onecycle.rates[-1])


def piecewise_constant_fn(epoch):
    if epoch < 1:
        return 0.01
    elif epoch < 2:
        return 0.005
    else:
        return 0.001


lr_scheduler = keras.callbacks.LearningRateScheduler(piecewise_constant_fn)
model = build_model()
model.compile(loss="sparse_categorical_crossentropy",
              optimizer=keras.optimizers.Nadam(learning_rate=0.01), metrics=["accuracy"])
pw_history = model.fit(X_train, y_train, epochs=2, validation_data=(X_valid, y_valid),
                       callbacks=[lr_scheduler])
final_lr = float(model.optimizer.learning_rate)

# Power scheduling is the InverseTimeDecay schedule
learning_rate = keras.optimizers.schedules.InverseTimeDecay(
    initial_learning_rate=0.01, decay_steps=10_000, decay_rate=1.0, staircase=False)
model = build_model()
model.compile(loss="sparse_categorical_crossentropy",
              optimizer=keras.optimizers.SGD(learning_rate=learning_rate), metrics=["accuracy"])
power_history = model.fit(X_train, y_train, epochs=2, validation_data=(X_valid, y_valid))
print(f"RESULT exp_decay_lr={exp_decay_lr:.5f} onecycle_steps={len(onecycle.rates)} "
      f"onecycle_max={max(onecycle.rates):.4f} first_loss={history.history['loss'][0]:.4f} "
      f"loss={history.history['loss'][-1]:.4f} val_accuracy={history.history['val_accuracy'][-1]:.4f} "
      f"piecewise_lr={final_lr:.4f} power_loss={power_history.history['loss'][-1]:.4f}")
