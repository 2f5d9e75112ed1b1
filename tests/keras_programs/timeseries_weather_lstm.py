# Source: "Timeseries forecasting for weather prediction" (Prabhanshu Attri, Yashika Sharma,
# Kristi Takach, Falak Shah), https://keras.io/examples/timeseries/timeseries_weather_forecasting/
# Adapted: a generated 3-feature "weather" series instead of the Jena climate CSV; past 120 / future 12
# hours; windows built with NumPy (keras.utils.timeseries_dataset_from_array needs TensorFlow); 2 epochs.
import numpy as np
import keras

rng = np.random.default_rng(42)
hours = np.arange(6000)
temperature = 10 + 8 * np.sin(2 * np.pi * hours / 24) + 0.2 * rng.normal(size=hours.size)
pressure = 1000 + 5 * np.cos(2 * np.pi * hours / 240) + 0.5 * rng.normal(size=hours.size)
humidity = 60 - 2 * (temperature - 10) + rng.normal(size=hours.size)
features = np.stack([pressure, temperature, humidity], axis=1).astype("float32")

split_fraction = 0.715
train_split = int(split_fraction * int(features.shape[0]))
step = 6
past = 120
future = 12
learning_rate = 0.005
batch_size = 256
epochs = 2


def normalize(data, train_split):
    data_mean = data[:train_split].mean(axis=0)
    data_std = data[:train_split].std(axis=0)
    return (data - data_mean) / data_std


features = normalize(features, train_split)
train_data = features[0 : train_split - 1]
val_data = features[train_split:]

start = past + future
end = start + train_split


def make_windows(data, targets, sequence_length, sampling_rate):
    span = sequence_length * sampling_rate
    count = len(data) - span + 1
    idx = np.arange(count)[:, None] + np.arange(0, span, sampling_rate)[None, :]
    return data[idx], targets[: count]


x_train = train_data
y_train = features[start:end][:, [1]]
sequence_length = int(past / step)
x_train, y_train = make_windows(x_train[: len(y_train) + past - 1], y_train, sequence_length, step)

x_end = len(val_data) - past - future
label_start = train_split + past + future
x_val = val_data[:x_end]
y_val = features[label_start:][:, [1]]
x_val, y_val = make_windows(x_val[: len(y_val) + past - 1], y_val, sequence_length, step)
x_train, y_train = x_train[::4], y_train[::4]
print("Input shape:", x_train.shape, "Target shape:", y_train.shape)

inputs = keras.layers.Input(shape=(x_train.shape[1], x_train.shape[2]))
lstm_out = keras.layers.LSTM(32)(inputs)
outputs = keras.layers.Dense(1)(lstm_out)

model = keras.Model(inputs=inputs, outputs=outputs)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
model.summary()

path_checkpoint = "model_checkpoint.weights.h5"
es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
modelckpt_callback = keras.callbacks.ModelCheckpoint(
    monitor="val_loss",
    filepath=path_checkpoint,
    verbose=1,
    save_weights_only=True,
    save_best_only=True,
)
history = model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    validation_data=(x_val[::8], y_val[::8]),
    callbacks=[es_callback, modelckpt_callback],
)
model.load_weights(path_checkpoint)
pred = model.predict(x_val[:5])
print(pred.ravel(), y_val[:5].ravel())
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"val_loss={history.history['val_loss'][-1]:.4f}")
