# Source: "Save, serialize, and export models" guide (Neel Kovelamudi, Francois Chollet),
# https://keras.io/guides/serialization_and_saving/
# Sections: save/load a .keras file, custom objects with register_keras_serializable and
# get_config, custom_objects and custom_object_scope, config-only (get_config/from_config,
# to_json/model_from_json), weights-only saving (save_weights/load_weights .weights.h5,
# get_weights/set_weights).
# Adapted: random data of the guide, short training.
import numpy as np
import keras
from keras import ops


def get_model():
    # Create a simple model.
    inputs = keras.Input(shape=(32,))
    outputs = keras.layers.Dense(1)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(), loss="mean_squared_error")
    return model


model = get_model()

# Train the model.
rng = np.random.default_rng(0)
test_input = rng.random((128, 32))
test_target = rng.random((128, 1))
history = model.fit(test_input, test_target, verbose=0)

# Calling `save('my_model.keras')` creates a zip archive `my_model.keras`.
model.save("my_model.keras")

# It can be used to reconstruct the model identically.
reconstructed_model = keras.models.load_model("my_model.keras")

# Let's check:
np.testing.assert_allclose(model.predict(test_input), reconstructed_model.predict(test_input),
                           rtol=1e-6, atol=1e-6)


# Clear all previously registered custom objects
keras.saving.get_custom_objects().clear()


# Upon registration, you can optionally specify a package or a name.
# If left blank, the package defaults to `Custom` and the name defaults to
# the class name.
@keras.saving.register_keras_serializable(package="MyLayers")
class CustomLayer(keras.layers.Layer):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {"factor": self.factor}


@keras.saving.register_keras_serializable(package="my_package", name="custom_fn")
def custom_fn(x):
    return x**2


# Create the model.
def get_model():
    inputs = keras.Input(shape=(4,))
    mid = CustomLayer(0.5)(inputs)
    outputs = keras.layers.Dense(1, activation=custom_fn)(mid)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="mean_squared_error")
    return model


# Train the model.
def train_model(model):
    input = rng.random((4, 4))
    target = rng.random((4, 1))
    model.fit(input, target, verbose=0)
    return model


test_input = rng.random((4, 4))
test_target = rng.random((4, 1))

model = get_model()
model = train_model(model)
model.save("custom_model.keras")

# Now, we can simply load without worrying about our custom objects.
reconstructed_model = keras.models.load_model("custom_model.keras")

# Let's check:
np.testing.assert_allclose(model.predict(test_input), reconstructed_model.predict(test_input))
print(sorted(keras.saving.get_custom_objects()))

# Config-only saving
model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)])
config = model.get_config()
new_model = keras.Sequential.from_config(config)

inputs = keras.Input((32,))
outputs = keras.layers.Dense(1)(inputs)
model = keras.Model(inputs, outputs)
config = model.get_config()
new_model = keras.Model.from_config(config)
json_config = model.to_json()
new_model = keras.models.model_from_json(json_config)
print(len(new_model.layers), new_model.count_params())

# Weights-only saving & loading
def create_layer():
    layer = keras.layers.Dense(64, activation="relu", name="dense_2")
    layer.build((None, 784))
    return layer


layer_1 = create_layer()
layer_2 = create_layer()

# Copy weights from layer 1 to layer 2
layer_2.set_weights(layer_1.get_weights())
same_weights = all(np.array_equal(a, b) for a, b in zip(layer_1.get_weights(), layer_2.get_weights()))

sequential_model = keras.Sequential([
    keras.Input(shape=(784,), name="digits"),
    keras.layers.Dense(64, activation="relu", name="dense_1"),
    keras.layers.Dense(64, activation="relu", name="dense_2"),
    keras.layers.Dense(10, name="predictions"),
])
sequential_model.save_weights("ckpt.weights.h5")
inputs = keras.Input(shape=(784,), name="digits")
x = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
x = keras.layers.Dense(64, activation="relu", name="dense_2")(x)
outputs = keras.layers.Dense(10, name="predictions")(x)
functional_model = keras.Model(inputs=inputs, outputs=outputs, name="3_layer_mlp")
functional_model.load_weights("ckpt.weights.h5")
probe = rng.random((3, 784)).astype("float32")
difference = float(np.max(np.abs(ops.convert_to_numpy(sequential_model(probe))
                                 - ops.convert_to_numpy(functional_model(probe)))))
print("max difference after load_weights:", difference)
print(f"RESULT loss={history.history['loss'][-1]:.4f} same_weights={int(same_weights)} "
      f"weights_difference={difference:.2e}")
