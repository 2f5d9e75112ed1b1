# Source: "Hands-On Machine Learning with Scikit-Learn, Keras, and TensorFlow" (A. Geron, 3rd ed.),
# chapter 12, "Custom Models and Training with TensorFlow": custom loss functions (huber_fn and a
# HuberLoss class with get_config), custom activation / initializer / regularizer / constraint
# functions, a custom layer with weights (MyDense), and a custom model holding a ResidualBlock
# whose layers are kept in a Python list (ResidualRegressor).
# Adapted: Keras 3 ops instead of tf.*, generated regression data, 5 epochs.
import numpy as np
import keras
from keras import ops

rng = np.random.default_rng(42)
X = rng.normal(size=(1000, 8)).astype("float32")
y = (X[:, :1] * 1.5 - X[:, 1:2] ** 2 * 0.5 + 0.3 * X[:, 2:3] * X[:, 3:4]).astype("float32")
X_train, y_train, X_test, y_test = X[:800], y[:800], X[800:], y[800:]
input_shape = X_train.shape[1:]


def huber_fn(y_true, y_pred):
    error = y_true - y_pred
    is_small_error = ops.abs(error) < 1
    squared_loss = ops.square(error) / 2
    linear_loss = ops.abs(error) - 0.5
    return ops.where(is_small_error, squared_loss, linear_loss)


keras.utils.set_random_seed(42)
model = keras.Sequential([
    keras.layers.Input(shape=input_shape),
    keras.layers.Dense(30, activation="relu", kernel_initializer="he_normal"),
    keras.layers.Dense(1),
])
model.compile(loss=huber_fn, optimizer="nadam", metrics=["mae"])
history = model.fit(X_train, y_train, epochs=5, validation_data=(X_test, y_test), verbose=0)
model.save("my_model_with_a_custom_loss.keras")
model = keras.models.load_model("my_model_with_a_custom_loss.keras",
                                custom_objects={"huber_fn": huber_fn})


class HuberLoss(keras.losses.Loss):
    def __init__(self, threshold=1.0, **kwargs):
        self.threshold = threshold
        super().__init__(**kwargs)

    def call(self, y_true, y_pred):
        error = y_true - y_pred
        is_small_error = ops.abs(error) < self.threshold
        squared_loss = ops.square(error) / 2
        linear_loss = self.threshold * ops.abs(error) - self.threshold**2 / 2
        return ops.where(is_small_error, squared_loss, linear_loss)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "threshold": self.threshold}


def my_softplus(z):
    return ops.log(1.0 + ops.exp(z))


def my_glorot_initializer(shape, dtype="float32"):
    stddev = np.sqrt(2.0 / (shape[0] + shape[1]))
    return keras.random.normal(shape, stddev=stddev, dtype=dtype)


def my_l1_regularizer(weights):
    return ops.sum(ops.abs(0.01 * weights))


def my_positive_weights(weights):  # return value is just tf.nn.relu(weights)
    return ops.where(weights < 0.0, ops.zeros_like(weights), weights)


model = keras.Sequential([
    keras.layers.Input(shape=input_shape),
    keras.layers.Dense(30, activation="relu", kernel_initializer="he_normal"),
    keras.layers.Dense(1, activation=my_softplus,
                       kernel_initializer=my_glorot_initializer,
                       kernel_regularizer=my_l1_regularizer,
                       kernel_constraint=my_positive_weights),
])
model.compile(loss=HuberLoss(2.0), optimizer="nadam", metrics=["mae"])
model.fit(X_train, np.abs(y_train), epochs=2, verbose=0)
kernel = model.layers[-1].get_weights()[0]
print("min output kernel weight (constrained >= 0):", kernel.min())


class MyDense(keras.layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)

    def build(self, batch_input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=[batch_input_shape[-1], self.units],
            initializer="glorot_normal")
        self.bias = self.add_weight(
            name="bias", shape=[self.units], initializer="zeros")

    def call(self, X):
        return self.activation(X @ self.kernel + self.bias)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


model = keras.Sequential([
    keras.layers.Input(shape=input_shape),
    MyDense(30, activation="relu"),
    MyDense(1),
])
model.compile(loss="mse", optimizer="nadam")
mydense_history = model.fit(X_train, y_train, epochs=3, verbose=0)


class ResidualBlock(keras.layers.Layer):
    def __init__(self, n_layers, n_neurons, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [keras.layers.Dense(n_neurons, activation="relu",
                                          kernel_initializer="he_normal")
                       for _ in range(n_layers)]

    def call(self, inputs):
        Z = inputs
        for layer in self.hidden:
            Z = layer(Z)
        return inputs + Z


class ResidualRegressor(keras.Model):
    def __init__(self, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden1 = keras.layers.Dense(30, activation="relu",
                                          kernel_initializer="he_normal")
        self.block1 = ResidualBlock(2, 30)
        self.block2 = ResidualBlock(2, 30)
        self.out = keras.layers.Dense(output_dim)

    def call(self, inputs):
        Z = self.hidden1(inputs)
        for _ in range(1 + 3):
            Z = self.block1(Z)
        Z = self.block2(Z)
        return self.out(Z)


keras.utils.set_random_seed(42)
model = ResidualRegressor(1)
model.compile(loss="mse", optimizer="nadam")
res_history = model.fit(X_train, y_train, epochs=5, verbose=0)
score = model.evaluate(X_test, y_test)
params = model.count_params()
print("ResidualRegressor parameters:", params)  # 30*8+30 + 4*(30*30+30) + 31 = 4,021
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"kernel_min={kernel.min():.4f} mydense_loss={mydense_history.history['loss'][-1]:.4f} "
      f"residual_first_loss={res_history.history['loss'][0]:.4f} residual_loss={res_history.history['loss'][-1]:.4f} "
      f"residual_params={params}")
