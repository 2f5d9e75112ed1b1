# Source: "Transfer learning & fine-tuning" guide (fchollet),
# https://keras.io/guides/transfer_learning/
# Sections: freezing layers (trainable, weights / trainable_weights / non_trainable_weights),
# recursive trainable setting, the typical workflow (base model called with training=False, new
# head trained, then fine-tuning of the whole model with a low learning rate after recompiling),
# BatchNormalization in inference mode while fine-tuning.
# Adapted: no ImageNet weights here: the "pre-trained" base is a small CNN trained first on
# Fashion-MNIST classes 0-4, then transferred to classes 5-9; 1,000 images each, 1-2 epochs (the base's
# BatchNormalization has momentum 0.9 so that its short pre-training leaves usable statistics).
import numpy as np
import keras
from keras import layers

layer = keras.layers.Dense(3)
layer.build((None, 4))  # Create the weights
print("weights:", len(layer.weights))
print("trainable_weights:", len(layer.trainable_weights))
print("non_trainable_weights:", len(layer.non_trainable_weights))

layer = keras.layers.BatchNormalization()
layer.build((None, 4))  # Create the weights
print("weights:", len(layer.weights))
print("trainable_weights:", len(layer.trainable_weights))
print("non_trainable_weights:", len(layer.non_trainable_weights))

layer = keras.layers.Dense(3)
layer.build((None, 4))  # Create the weights
layer.trainable = False  # Freeze the layer
print("weights:", len(layer.weights))
print("trainable_weights:", len(layer.trainable_weights))
print("non_trainable_weights:", len(layer.non_trainable_weights))

# Make a model with 2 layers
layer1 = keras.layers.Dense(3, activation="relu")
layer2 = keras.layers.Dense(3, activation="sigmoid")
model = keras.Sequential([keras.Input(shape=(3,)), layer1, layer2])
# Freeze the first layer
layer1.trainable = False
# Keep a copy of the weights of layer1 for later reference
initial_layer1_weights_values = layer1.get_weights()
# Train the model
model.compile(optimizer="adam", loss="mse")
model.fit(np.random.random((2, 3)), np.random.random((2, 3)))
# Check that the weights of layer1 have not changed during training
final_layer1_weights_values = layer1.get_weights()
np.testing.assert_allclose(initial_layer1_weights_values[0], final_layer1_weights_values[0])
np.testing.assert_allclose(initial_layer1_weights_values[1], final_layer1_weights_values[1])

inner_model = keras.Sequential(
    [
        keras.Input(shape=(3,)),
        keras.layers.Dense(3, activation="relu"),
        keras.layers.Dense(3, activation="relu"),
    ]
)
model = keras.Sequential([keras.Input(shape=(3,)), inner_model, keras.layers.Dense(3, activation="sigmoid")])
model.trainable = False  # Freeze the outer model
assert inner_model.trainable == False  # All layers in `model` are now frozen
assert inner_model.layers[0].trainable == False  # `trainable` is propagated recursively

# A "pre-trained" base: trained on classes 0-4
(x_all, y_all), _ = keras.datasets.fashion_mnist.load_data()
x_all = x_all[:6000, ..., None].astype("float32") / 255.0
y_all = y_all[:6000]
source = y_all < 5
x_source, y_source = x_all[source][:1000], y_all[source][:1000]
x_target, y_target = x_all[~source][:1000], y_all[~source][:1000] - 5

base_model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(16, 3, activation="relu"),
    layers.BatchNormalization(momentum=0.9),
    layers.MaxPooling2D(),
    layers.Conv2D(32, 3, activation="relu"),
    layers.GlobalAveragePooling2D(),
], name="base")
pretrain = keras.Sequential([base_model, layers.Dense(5)])
pretrain.compile(optimizer="adam",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
pretrain.fit(x_source, y_source, epochs=2, batch_size=32)

# Freeze the base_model
base_model.trainable = False

# Create new model on top
inputs = keras.Input(shape=(28, 28, 1))
# The base model contains batchnorm layers. We want to keep them in inference mode
# when we unfreeze the base model for fine-tuning, so we make sure that the
# base_model is running in inference mode here.
x = base_model(inputs, training=False)
x = keras.layers.Dropout(0.2)(x)  # Regularize with dropout
outputs = keras.layers.Dense(5)(x)
model = keras.Model(inputs, outputs)
model.summary(show_trainable=True)

model.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
frozen_before = [w.copy() for w in base_model.get_weights()]
history = model.fit(x_target, y_target, epochs=2, batch_size=64, validation_split=0.2)
frozen_ok = all(np.array_equal(a, b) for a, b in zip(frozen_before, base_model.get_weights()))

# Unfreeze the base_model. Note that it keeps running in inference mode
# since we passed `training=False` when calling it. This means that
# the batchnorm layers will not update their batch statistics.
# This prevents the batchnorm layers from undoing all the training
# we've done so far.
base_model.trainable = True
model.summary(show_trainable=True)
bn = base_model.layers[1]
moving_mean_before = bn.get_weights()[2].copy()

model.compile(
    optimizer=keras.optimizers.Adam(1e-5),  # Low learning rate
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
fine_history = model.fit(x_target, y_target, epochs=1, batch_size=64, validation_split=0.2)
bn_frozen = bool(np.array_equal(moving_mean_before, bn.get_weights()[2]))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"accuracy={history.history['sparse_categorical_accuracy'][-1]:.4f} "
      f"frozen_unchanged={int(frozen_ok)} bn_stats_unchanged={int(bn_frozen)} "
      f"fine_loss={fine_history.history['loss'][-1]:.4f}")
