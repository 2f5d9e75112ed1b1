# Source: "Working with RNNs" guide (Scott Zhu, Francois Chollet),
# https://keras.io/guides/working_with_rnns/
# Sections: built-in RNN layers, outputs and states (return_sequences / return_state /
# initial_state), RNN layers and RNN cells (keras.layers.RNN(keras.layers.LSTMCell(...))),
# cross-batch statefulness (stateful=True, reset_states), Bidirectional, and the LSTM vs
# RNN(LSTMCell) model on image rows (same weights via set_weights). The guide's last section (a
# custom cell with nested inputs and states) is rnn_nested_cell.py.
# Adapted: Fashion-MNIST (1,000 images) instead of MNIST, which is not local; 2 epochs;
# np.argmax instead of tf.argmax.
import numpy as np
import keras
from keras import layers

# Built-in RNN layers: a simple example
model = keras.Sequential()
# Add an Embedding layer expecting input vocab of size 1000, and
# output embedding dimension of size 64.
model.add(layers.Embedding(input_dim=1000, output_dim=64))
# Add a LSTM layer with 128 internal units.
model.add(layers.LSTM(128))
# Add a Dense layer with 10 units.
model.add(layers.Dense(10))
model.build((None, 12))
model.summary()

model = keras.Sequential()
model.add(layers.Embedding(input_dim=1000, output_dim=64))
# The output of GRU will be a 3D tensor of shape (batch_size, timesteps, 256)
model.add(layers.GRU(256, return_sequences=True))
# The output of SimpleRNN will be a 2D tensor of shape (batch_size, 128)
model.add(layers.SimpleRNN(128))
model.add(layers.Dense(10))
model.build((None, 12))
model.summary()
gru_params = model.count_params()

# Outputs and states
encoder_vocab = 1000
decoder_vocab = 2000

encoder_input = layers.Input(shape=(None,))
encoder_embedded = layers.Embedding(input_dim=encoder_vocab, output_dim=64)(encoder_input)
# Return states in addition to output
output, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
encoder_state = [state_h, state_c]

decoder_input = layers.Input(shape=(None,))
decoder_embedded = layers.Embedding(input_dim=decoder_vocab, output_dim=64)(decoder_input)
# Pass the 2 states to a new LSTM layer, as initial state
decoder_output = layers.LSTM(64, name="decoder")(decoder_embedded, initial_state=encoder_state)
output = layers.Dense(10)(decoder_output)

model = keras.Model([encoder_input, decoder_input], output)
model.summary()
seq2seq_params = model.count_params()

# RNN layers and RNN cells
paragraph1 = np.random.random((20, 10, 50)).astype(np.float32)
paragraph2 = np.random.random((20, 10, 50)).astype(np.float32)
paragraph3 = np.random.random((20, 10, 50)).astype(np.float32)

lstm_layer = layers.LSTM(64, stateful=True)
output = lstm_layer(paragraph1)
output = lstm_layer(paragraph2)
output = lstm_layer(paragraph3)

# reset_states() will reset the cached state to the original initial_state.
# If no initial_state was provided, zero-states will be used by default.
lstm_layer.reset_states()

# RNN State Reuse
existing_state = lstm_layer.states
new_lstm_layer = layers.LSTM(64)
new_output = new_lstm_layer(paragraph3, initial_state=existing_state)
stateful_shape = tuple(new_output.shape)

# Bidirectional RNNs
model = keras.Sequential()
model.add(keras.Input(shape=(5, 10)))
model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True)))
model.add(layers.Bidirectional(layers.LSTM(32)))
model.add(layers.Dense(10))
model.summary()
bidirectional_params = model.count_params()

# Performance optimization and CuDNN kernels
batch_size = 64
# Each image batch is a tensor of shape (batch_size, 28, 28).
# Each input sequence will be of size (28, 28) (height is treated like time).
input_dim = 28

units = 64
output_size = 10  # labels are from 0 to 9


# Build the RNN model
def build_model(allow_cudnn_kernel=True):
    # CuDNN is only available at the layer level, and not at the cell level.
    # This means `LSTM(units)` will use the CuDNN kernel,
    # while RNN(LSTMCell(units)) will run on non-CuDNN kernel.
    if allow_cudnn_kernel:
        # The LSTM layer with default options uses CuDNN.
        lstm_layer = keras.layers.LSTM(units)
    else:
        # Wrapping a LSTMCell in a RNN layer will not use CuDNN.
        lstm_layer = keras.layers.RNN(keras.layers.LSTMCell(units))
    model = keras.models.Sequential(
        [
            keras.Input(shape=(None, input_dim)),
            lstm_layer,
            keras.layers.BatchNormalization(),
            keras.layers.Dense(output_size),
        ]
    )
    return model


(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train, x_test = x_train[:1000] / 255.0, x_test[:300] / 255.0
y_train, y_test = y_train[:1000], y_test[:300]
sample, sample_label = x_train[0], y_train[0]

model = build_model(allow_cudnn_kernel=True)

model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer="adam",
    metrics=["accuracy"],
)

history = model.fit(
    x_train, y_train, validation_data=(x_test, y_test), batch_size=batch_size, epochs=2
)

noncudnn_model = build_model(allow_cudnn_kernel=False)
noncudnn_model.set_weights(model.get_weights())
noncudnn_model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer="adam",
    metrics=["accuracy"],
)
layer_predictions = model.predict(x_test[:32], verbose=0)
cell_predictions = noncudnn_model.predict(x_test[:32], verbose=0)
cell_vs_layer = float(np.max(np.abs(layer_predictions - cell_predictions)))
result = np.argmax(model.predict(np.expand_dims(sample, 0), verbose=0), axis=1)
print("Predicted result is: %s, target result is: %s" % (result[0], sample_label))
cell_history = noncudnn_model.fit(x_train, y_train, batch_size=batch_size, epochs=1)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"val_accuracy={history.history['val_accuracy'][-1]:.4f} cell_vs_layer={cell_vs_layer:.3g} "
      f"cell_loss={cell_history.history['loss'][-1]:.4f} gru_params={gru_params} "
      f"seq2seq_params={seq2seq_params} bidirectional_params={bidirectional_params} "
      f"stateful_units={stateful_shape[1]}")
