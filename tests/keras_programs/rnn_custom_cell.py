# Source: keras.layers.RNN API documentation (the MinimalRNNCell example),
# https://keras.io/api/layers/recurrent_layers/rnn/ , with the cell classes of
# https://keras.io/api/layers/recurrent_layers/ (LSTMCell, GRUCell, StackedRNNCells)
# A user cell (state_size, build with add_weight, call(inputs, states) returning
# (output, new_states)) in keras.layers.RNN, a stacked RNN from a list of cells, a cell with
# two states, built-in cells in StackedRNNCells, and a .keras round trip of the registered cell.
# Adapted: the documentation builds the layers only; here they are trained for 4 epochs on a
# generated task (is the running sum of the first feature positive?), 600 sequences of 10 steps.
# (The "Working with RNNs" guide's nested-state cell does not run on Keras 3 itself: its RNN
# layer takes a flat list of int state sizes; that is why it is not in the corpus.)
import numpy as np
import keras
from keras import ops
from keras.layers import RNN


@keras.saving.register_keras_serializable()
class MinimalRNNCell(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer='uniform',
                                      name='kernel')
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            initializer='uniform',
            name='recurrent_kernel')
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = h + ops.matmul(prev_output, self.recurrent_kernel)
        return output, [output]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


# Let's use this cell in a RNN layer:
cell = MinimalRNNCell(32)
x = keras.Input((None, 5))
layer = RNN(cell)
y = layer(x)
print("one cell:", tuple(y.shape))

# Here's how to use the cell to build a stacked RNN:
cells = [MinimalRNNCell(32), MinimalRNNCell(64)]
x = keras.Input((None, 5))
layer = RNN(cells)
y = layer(x)
stacked_units = y.shape[-1]
print("stacked cells:", tuple(y.shape))


# A cell with two states (a leaky accumulator beside the recurrent output).
@keras.saving.register_keras_serializable()
class LeakyMemoryCell(keras.layers.Layer):
    def __init__(self, units, leak=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.leak = leak
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="orthogonal", name="recurrent_kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs, states):
        h, memory = states
        h = ops.tanh(ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel)
                     + self.bias)
        memory = self.leak * memory + (1.0 - self.leak) * h
        return memory, [h, memory]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "leak": self.leak})
        return config


rng = np.random.default_rng(0)
x_data = rng.normal(size=(600, 10, 5)).astype("float32")
y_data = (x_data[:, :, 0].sum(axis=1) > 0).astype("float32")
x_train, y_train, x_test, y_test = x_data[:500], y_data[:500], x_data[500:], y_data[500:]

inputs = keras.Input((None, 5))
h = RNN(LeakyMemoryCell(16), return_sequences=True)(inputs)
h = RNN([MinimalRNNCell(16), MinimalRNNCell(8)])(h)
outputs = keras.layers.Dense(1, activation="sigmoid")(h)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
              metrics=["accuracy"])
model.summary()
history = model.fit(x_train, y_train, batch_size=32, epochs=4, validation_split=0.1)
_, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

model.save("custom_cells.keras")
reloaded = keras.models.load_model("custom_cells.keras")
reload_diff = float(np.max(np.abs(reloaded.predict(x_test, verbose=0)
                                  - model.predict(x_test, verbose=0))))

# Built-in cells stacked with StackedRNNCells, as a plain LSTM/GRU would be.
stacked = keras.Sequential([
    keras.Input((None, 5)),
    RNN(keras.layers.StackedRNNCells([keras.layers.LSTMCell(16), keras.layers.GRUCell(8)])),
    keras.layers.Dense(1, activation="sigmoid"),
])
stacked.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
stacked_history = stacked.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={test_accuracy:.4f} reload_diff={reload_diff:.3g} "
      f"stacked_units={stacked_units} params={model.count_params()} "
      f"stacked_params={stacked.count_params()} "
      f"stacked_first_loss={stacked_history.history['loss'][0]:.4f} "
      f"stacked_loss={stacked_history.history['loss'][-1]:.4f}")
