# Source: "Hands-On Machine Learning with Scikit-Learn, Keras, and TensorFlow" (A. Geron, 3rd ed.),
# chapter 14, "Implementing a ResNet-34 CNN Using Keras" (ResidualUnit with its layers in Python
# lists).
# Adapted: Keras 3 imports; the full ResNet-34 is built and its parameters counted
# (21,306,826 for 224x224x3 inputs and 10 classes), then a 3-unit version with 16-32 filters is
# trained on 500 Fashion-MNIST images for 2 epochs.
from functools import partial

import numpy as np
import keras

DefaultConv2D = partial(keras.layers.Conv2D, kernel_size=3, strides=1,
                        padding="same", kernel_initializer="he_normal",
                        use_bias=False)


class ResidualUnit(keras.layers.Layer):
    def __init__(self, filters, strides=1, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.main_layers = [
            DefaultConv2D(filters, strides=strides),
            keras.layers.BatchNormalization(),
            self.activation,
            DefaultConv2D(filters),
            keras.layers.BatchNormalization()
        ]
        self.skip_layers = []
        if strides > 1:
            self.skip_layers = [
                DefaultConv2D(filters, kernel_size=1, strides=strides),
                keras.layers.BatchNormalization()
            ]

    def call(self, inputs):
        Z = inputs
        for layer in self.main_layers:
            Z = layer(Z)
        skip_Z = inputs
        for layer in self.skip_layers:
            skip_Z = layer(skip_Z)
        return self.activation(Z + skip_Z)


def build_resnet(input_shape, first_filters, units, num_classes):
    model = keras.Sequential([
        keras.layers.Input(shape=input_shape),
        DefaultConv2D(first_filters, kernel_size=7, strides=2),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.MaxPool2D(pool_size=3, strides=2, padding="same"),
    ])
    prev_filters = first_filters
    for filters in units:
        strides = 1 if filters == prev_filters else 2
        model.add(ResidualUnit(filters, strides=strides))
        prev_filters = filters
    model.add(keras.layers.GlobalAvgPool2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(num_classes, activation="softmax"))
    return model


resnet34 = build_resnet([224, 224, 3], 64, [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3, 10)
resnet34_params = resnet34.count_params()
print("ResNet-34 parameters:", resnet34_params)
del resnet34

(x_train, y_train), _ = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:500, ..., np.newaxis].astype("float32") / 255.0
y_train = y_train[:500]
model = build_resnet([28, 28, 1], 16, [16, 32], 10)
model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=2, batch_size=64)
print(f"RESULT resnet34_params={resnet34_params} first_loss={history.history['loss'][0]:.4f} "
      f"loss={history.history['loss'][-1]:.4f}")
