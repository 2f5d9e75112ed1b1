# Source: keras.io API docs, "LearningRateScheduler" and "ReduceLROnPlateau" callbacks,
# https://keras.io/api/callbacks/learning_rate_scheduler/ and
# https://keras.io/api/callbacks/reduce_lr_on_plateau/
# Adapted: the documented examples on one small model, generated data; the scheduler example's
# targets have the model's output shape (5, 10) (the torch backend does not broadcast (5,)).
import numpy as np
import keras


# This function keeps the initial learning rate for the first ten epochs
# and decreases it exponentially after that.
def scheduler(epoch, lr):
    if epoch < 2:
        return lr
    else:
        return lr * float(np.exp(-0.1))


model = keras.models.Sequential([keras.layers.Dense(10)])
model.compile(keras.optimizers.SGD(), loss="mse")
print(round(float(model.optimizer.learning_rate), 5))

callback = keras.callbacks.LearningRateScheduler(scheduler)
history = model.fit(np.arange(100).reshape(5, 20), np.zeros((5, 10)), epochs=5, callbacks=[callback],
                    verbose=0)
print(len(history.history["loss"]))
lr_after_schedule = round(float(model.optimizer.learning_rate), 5)
print(lr_after_schedule)

rng = np.random.default_rng(0)
x = rng.normal(size=(512, 10)).astype("float32")
y = (x @ rng.normal(size=(10, 1))).astype("float32") + 0.5 * rng.normal(size=(512, 1)).astype("float32")
x_val, y_val = x[-128:], y[-128:]
x, y = x[:-128], y[:-128]
model = keras.Sequential([keras.Input(shape=(10,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=1,
                                              min_lr=0.001)
history = model.fit(x, y, epochs=12, batch_size=32, validation_data=(x_val, y_val),
                    callbacks=[reduce_lr], verbose=0)
print(history.history.keys())
lrs = history.history.get("learning_rate", [])
print("learning rates:", lrs)
final_lr = float(model.optimizer.learning_rate)
print(f"RESULT lr_after_schedule={lr_after_schedule:.5f} first_loss={history.history['loss'][0]:.4f} "
      f"loss={history.history['loss'][-1]:.4f} final_lr={final_lr:.5f} "
      f"logged_lrs={len(lrs)}")
