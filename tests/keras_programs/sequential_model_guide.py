# Source: "The Sequential model" guide (fchollet), https://keras.io/guides/sequential_model/
# Adapted: the guide's snippets in one program; feature extraction and transfer on Fashion-MNIST
# (2,000 images, 1 epoch).
import numpy as np
import keras
from keras import layers
from keras import ops

# Define Sequential model with 3 layers
model = keras.Sequential(
    [
        layers.Dense(2, activation="relu", name="layer1"),
        layers.Dense(3, activation="relu", name="layer2"),
        layers.Dense(4, name="layer3"),
    ]
)
# Call model on a test input
x = ops.ones((3, 3))
y = model(x)
print(y.shape)

# Create 3 layers, call them in sequence on a test input
layer1 = layers.Dense(2, activation="relu", name="layer1")
layer2 = layers.Dense(3, activation="relu", name="layer2")
layer3 = layers.Dense(4, name="layer3")
y = layer3(layer2(layer1(x)))

model = keras.Sequential()
model.add(layers.Dense(2, activation="relu"))
model.add(layers.Dense(3, activation="relu"))
model.add(layers.Dense(4))
print(len(model.layers))
model.pop()
print(len(model.layers))  # 2

layer = layers.Dense(3)
print(layer.weights)  # Empty
x = ops.ones((1, 4))
y = layer(x)
print(len(layer.weights))  # Now it has weights, of shape (4, 3) and (3,)

model = keras.Sequential()
model.add(keras.Input(shape=(4,)))
model.add(layers.Dense(2, activation="relu"))
model.summary()
print(len(model.layers))

model = keras.Sequential()
model.add(keras.Input(shape=(250, 250, 3)))  # 250x250 RGB images
model.add(layers.Conv2D(32, 5, strides=2, activation="relu"))
model.add(layers.Conv2D(32, 3, activation="relu"))
model.add(layers.MaxPooling2D(3))
model.summary()
conv_output_shape = model.output_shape
print(conv_output_shape)

# Feature extraction with a Sequential model
initial_model = keras.Sequential(
    [
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(8, 3, strides=2, activation="relu"),
        layers.Conv2D(8, 3, strides=2, activation="relu"),
        layers.Conv2D(8, 3, strides=1, activation="relu", name="my_intermediate_layer"),
    ]
)
feature_extractor = keras.Model(
    inputs=initial_model.inputs,
    outputs=[layer.output for layer in initial_model.layers],
)
x = ops.ones((1, 28, 28, 1))
features = feature_extractor(x)
print([tuple(f.shape) for f in features])

feature_extractor = keras.Model(
    inputs=initial_model.inputs,
    outputs=initial_model.get_layer(name="my_intermediate_layer").output,
)
features = feature_extractor(x)
print(tuple(features.shape))

# Transfer learning: freeze all layers except the last one
(x_train, y_train), _ = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:2000].reshape(-1, 784).astype("float32") / 255
y_train = y_train[:2000]
model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(10),
    ]
)
for layer in model.layers[:-1]:
    layer.trainable = False
frozen_before = [w.copy() for w in model.layers[0].get_weights()]
model.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=2, batch_size=64)
frozen_after = model.layers[0].get_weights()
unchanged = all(np.array_equal(a, b) for a, b in zip(frozen_before, frozen_after))
print("frozen layer unchanged:", unchanged, "trainable weights:", len(model.trainable_weights))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"frozen_unchanged={int(unchanged)} trainable_weights={len(model.trainable_weights)}")
