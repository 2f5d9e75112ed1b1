# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 10, "Deep learning for
# timeseries": a common-sense baseline, a densely connected model, a 1D convolutional model,
# an LSTM, a GRU with recurrent dropout, and a bidirectional LSTM on temperature forecasting.
# Adapted: a generated hourly series (temperature with daily and yearly cycles plus 13 related
# features) instead of the Jena climate CSV; windows built with NumPy (the book's
# timeseries_dataset_from_array needs TensorFlow); sequence length 24, 1-3 epochs each.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(0)
hours = np.arange(8000)
temperature = (2 + 8 * np.sin(2 * np.pi * hours / 24) + 6 * np.sin(2 * np.pi * hours / 2000)
               + rng.normal(scale=0.5, size=hours.size))
others = rng.normal(size=(hours.size, 13)) + temperature[:, None] * rng.uniform(-0.2, 0.2, 13)
raw_data = np.concatenate([others[:, :1], temperature[:, None], others[:, 1:]], axis=1)

num_train_samples = int(0.5 * len(raw_data))
num_val_samples = int(0.25 * len(raw_data))
mean = raw_data[:num_train_samples].mean(axis=0)
raw_data -= mean
std = raw_data[:num_train_samples].std(axis=0)
raw_data /= std

sampling_rate = 1
sequence_length = 24
delay = sampling_rate * (sequence_length + 6 - 1)


def windows(start, end, stride=4):
    starts = np.arange(start, end - delay - 1, stride)
    x = np.stack([raw_data[s : s + sequence_length] for s in starts]).astype("float32")
    y = temperature[starts + delay].astype("float32")
    return x, y


x_train, y_train = windows(0, num_train_samples)
x_val, y_val = windows(num_train_samples, num_train_samples + num_val_samples)
x_test, y_test = windows(num_train_samples + num_val_samples, len(raw_data))
print(x_train.shape, x_val.shape, x_test.shape)

# Common-sense baseline: the temperature 6 hours before the prediction time
baseline_mae = float(np.mean(np.abs(x_val[:, -1, 1] * std[1] + mean[1] - y_val)))
print(f"Validation MAE of the baseline: {baseline_mae:.2f}")

results = {}

inputs = keras.Input(shape=(sequence_length, raw_data.shape[-1]))
x = layers.Flatten()(inputs)
x = layers.Dense(16, activation="relu")(x)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
callbacks = [keras.callbacks.ModelCheckpoint("jena_dense.keras", save_best_only=True)]
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
history = model.fit(x_train, y_train, epochs=3, validation_data=(x_val, y_val),
                    callbacks=callbacks, verbose=0)
model = keras.models.load_model("jena_dense.keras")
results["dense"] = model.evaluate(x_test, y_test, verbose=0)[1]

inputs = keras.Input(shape=(sequence_length, raw_data.shape[-1]))
x = layers.Conv1D(8, 6, activation="relu")(inputs)
x = layers.MaxPooling1D(2)(x)
x = layers.Conv1D(8, 3, activation="relu")(x)
x = layers.GlobalAveragePooling1D()(x)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
model.fit(x_train, y_train, epochs=2, validation_data=(x_val, y_val), verbose=0)
results["conv1d"] = model.evaluate(x_test, y_test, verbose=0)[1]

inputs = keras.Input(shape=(sequence_length, raw_data.shape[-1]))
x = layers.LSTM(16)(inputs)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
lstm_history = model.fit(x_train, y_train, epochs=3, validation_data=(x_val, y_val), verbose=0)
results["lstm"] = model.evaluate(x_test, y_test, verbose=0)[1]

inputs = keras.Input(shape=(sequence_length, raw_data.shape[-1]))
x = layers.GRU(16, recurrent_dropout=0.25)(inputs)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
model.fit(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)
results["gru_recurrent_dropout"] = model.evaluate(x_test, y_test, verbose=0)[1]

inputs = keras.Input(shape=(sequence_length, raw_data.shape[-1]))
x = layers.Bidirectional(layers.LSTM(8))(inputs)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
model.fit(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)
results["bidirectional"] = model.evaluate(x_test, y_test, verbose=0)[1]
print(results)
print(f"RESULT first_loss={lstm_history.history['loss'][0]:.4f} loss={lstm_history.history['loss'][-1]:.4f} "
      f"lstm_mae={results['lstm']:.4f} dense_mae={results['dense']:.4f} baseline_mae={baseline_mae:.4f} "
      f"target_std={y_test.std():.4f}")
