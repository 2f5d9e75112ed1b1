# Source: "The Functional API" guide (fchollet), https://keras.io/guides/functional_api/
# Sections "Introduction", "Training, evaluation, and inference", "Save and serialize",
# "Use the same graph of layers to define multiple models" (autoencoder).
# Adapted: Fashion-MNIST, 4,000 training images, 2 epochs.
import numpy as np
import keras
from keras import layers
from keras import ops

inputs = keras.Input(shape=(784,))
img_inputs = keras.Input(shape=(32, 32, 3))
print(inputs.shape, inputs.dtype)

dense = layers.Dense(64, activation="relu")
x = dense(inputs)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")
model.summary()

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:4000].reshape(4000, 784).astype("float32") / 255
x_test = x_test[:1000].reshape(1000, 784).astype("float32") / 255
y_train, y_test = y_train[:4000], y_test[:1000]

model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer=keras.optimizers.RMSprop(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.2)
test_scores = model.evaluate(x_test, y_test, verbose=2)
print("Test loss:", test_scores[0])
print("Test accuracy:", test_scores[1])

model.save("my_model.keras")
del model
# Recreate the exact same model purely from the file:
model = keras.models.load_model("my_model.keras")
reloaded_scores = model.evaluate(x_test, y_test, verbose=0)
print("reloaded:", reloaded_scores)

# Same graph of layers, multiple models: an autoencoder
encoder_input = keras.Input(shape=(28, 28, 1), name="img")
x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
x = layers.Conv2D(32, 3, activation="relu")(x)
x = layers.MaxPooling2D(3)(x)
x = layers.Conv2D(32, 3, activation="relu")(x)
x = layers.Conv2D(16, 3, activation="relu")(x)
encoder_output = layers.GlobalMaxPooling2D()(x)
encoder = keras.Model(encoder_input, encoder_output, name="encoder")
encoder.summary()
x = layers.Reshape((4, 4, 1))(encoder_output)
x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
x = layers.UpSampling2D(3)(x)
x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
decoder_output = layers.Conv2DTranspose(1, 3, activation="relu")(x)
autoencoder = keras.Model(encoder_input, decoder_output, name="autoencoder")
autoencoder.summary()
print(autoencoder.output_shape, autoencoder.count_params())
out = autoencoder(ops.ones((2, 28, 28, 1)))
print(tuple(out.shape))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={test_scores[1]:.4f} reloaded_accuracy={reloaded_scores[1]:.4f} "
      f"autoencoder_params={autoencoder.count_params()}")
