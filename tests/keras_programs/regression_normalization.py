# Source: "Basic regression: Predict fuel efficiency", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/keras/regression
# Sections: Normalization layer (adapt), linear regression with one variable and with multiple
# inputs, DNN regression, evaluate, predict.
# Adapted: a generated auto-MPG-like table (NumPy) instead of the UCI CSV; 30 epochs.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(0)
n = 392
cylinders = rng.choice([4, 6, 8], size=n)
displacement = cylinders * 40 + rng.normal(0, 20, size=n)
horsepower = displacement * 0.5 + rng.normal(0, 10, size=n)
weight = 1500 + displacement * 6 + rng.normal(0, 200, size=n)
acceleration = 20 - horsepower / 25 + rng.normal(0, 1, size=n)
model_year = rng.integers(70, 83, size=n)
origin = rng.integers(1, 4, size=n)
mpg = 46 - 0.006 * weight + 0.5 * (model_year - 70) + rng.normal(0, 2, size=n)
features = np.stack([cylinders, displacement, horsepower, weight, acceleration, model_year,
                     origin == 1, origin == 2, origin == 3], axis=1).astype("float32")
labels = mpg.astype("float32")

train_features, test_features = features[:314], features[314:]
train_labels, test_labels = labels[:314], labels[314:]

normalizer = layers.Normalization(axis=-1)
normalizer.adapt(np.array(train_features))
print(normalizer.mean.numpy() if hasattr(normalizer.mean, "numpy") else normalizer.mean)

first = np.array(train_features[:1])
print("First example:", first)
print("Normalized:", keras.ops.convert_to_numpy(normalizer(first)))

horsepower = np.array(train_features[:, 2])
horsepower_normalizer = layers.Normalization(input_shape=[1,], axis=None)
horsepower_normalizer.adapt(horsepower)

horsepower_model = keras.Sequential([
    horsepower_normalizer,
    layers.Dense(units=1)
])
horsepower_model.summary()
print(horsepower_model.predict(horsepower[:10]))
horsepower_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1),
                         loss="mean_absolute_error")
history = horsepower_model.fit(train_features[:, 2], train_labels, epochs=30, verbose=0,
                               validation_split=0.2)
test_results = {}
test_results["horsepower_model"] = horsepower_model.evaluate(test_features[:, 2], test_labels,
                                                             verbose=0)

linear_model = keras.Sequential([
    normalizer,
    layers.Dense(units=1)
])
print(linear_model.predict(train_features[:10]))
print(linear_model.layers[1].kernel)
linear_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1),
                     loss="mean_absolute_error")
history = linear_model.fit(train_features, train_labels, epochs=30, verbose=0,
                           validation_split=0.2)
test_results["linear_model"] = linear_model.evaluate(test_features, test_labels, verbose=0)


def build_and_compile_model(norm):
    model = keras.Sequential([
        norm,
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1)
    ])
    model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
    return model


dnn_model = build_and_compile_model(normalizer)
dnn_model.summary()
dnn_history = dnn_model.fit(train_features, train_labels, validation_split=0.2, verbose=0,
                            epochs=30)
test_results["dnn_model"] = dnn_model.evaluate(test_features, test_labels, verbose=0)
test_predictions = dnn_model.predict(test_features).flatten()
print(test_results)
dnn_model.save("dnn_model.keras")
reloaded = keras.models.load_model("dnn_model.keras")
reload_mae = reloaded.evaluate(test_features, test_labels, verbose=0)
print(f"RESULT first_loss={dnn_history.history['loss'][0]:.4f} loss={dnn_history.history['loss'][-1]:.4f} "
      f"linear_mae={test_results['linear_model']:.4f} dnn_mae={test_results['dnn_model']:.4f} "
      f"reloaded_mae={reload_mae:.4f} label_std={test_labels.std():.4f}")
