# Source: "The Functional API" guide, section "A toy ResNet model",
# https://keras.io/guides/functional_api/
# Adapted: Fashion-MNIST (28x28x1) instead of CIFAR-10, 1,000 images, 2 epochs, narrower filters.
import numpy as np
import keras
from keras import layers

inputs = keras.Input(shape=(28, 28, 1), name="img")
x = layers.Conv2D(16, 3, activation="relu")(inputs)
x = layers.Conv2D(32, 3, activation="relu")(x)
block_1_output = layers.MaxPooling2D(3)(x)

x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_1_output)
x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
block_2_output = layers.add([x, block_1_output])

x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_2_output)
x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
block_3_output = layers.add([x, block_2_output])

x = layers.Conv2D(32, 3, activation="relu")(block_3_output)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(64, activation="relu")(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10)(x)

model = keras.Model(inputs, outputs, name="toy_resnet")
model.summary()

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:1000, ..., None].astype("float32") / 255.0
x_test = x_test[:500, ..., None].astype("float32") / 255.0
y_train = keras.utils.to_categorical(y_train[:1000], 10)
y_test = keras.utils.to_categorical(y_test[:500], 10)

model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    metrics=["acc"],
)
history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.2)
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={acc:.4f} params={model.count_params()}")
