# Source: keras.io API docs, "Ops API" (https://keras.io/api/ops/) and "Random operations"
# (https://keras.io/api/random/), and the "Introduction to Keras for engineers" guide's note
# that keras.ops work on symbolic tensors of functional models
# (https://keras.io/getting_started/intro_to_keras_for_engineers/).
# Adapted: a tour of the documented NumPy-style and NN ops, keras.random with seeds and
# SeedGenerator, and a functional model built from ops on KerasTensors trained on generated data.
import numpy as np
import keras
from keras import layers
from keras import ops

x = ops.arange(12, dtype="float32")
x = ops.reshape(x, (3, 4))
print(ops.sum(x), ops.mean(x, axis=0), ops.max(x, axis=1))
print(ops.transpose(x).shape, ops.expand_dims(x, 0).shape, ops.squeeze(ops.ones((1, 3, 1))).shape)
y = ops.matmul(x, ops.transpose(x))
print(ops.convert_to_numpy(y))
print(ops.softmax(ops.convert_to_tensor([1.0, 2.0, 3.0])))
print(ops.relu(ops.convert_to_tensor([-1.0, 0.0, 1.0])), ops.sigmoid(ops.zeros((2,))))
print(ops.concatenate([x, x], axis=0).shape, ops.stack([x, x], axis=0).shape)
print(ops.where(x > 5, x, ops.zeros_like(x)))
print(ops.cumsum(ops.ones((4,))), ops.argmax(x, axis=1), ops.one_hot(ops.arange(3), 3))
print(ops.clip(x, 2.0, 8.0), ops.sqrt(ops.abs(x - 6.0)), ops.log1p(x)[0])
print(ops.einsum("ij,kj->ik", x, x).shape, ops.norm(x), ops.top_k(x[0], 2))
print(ops.shape(x), ops.cast(x, "int32").dtype, ops.take(x, ops.array([0, 2]), axis=0).shape)
expected = np.arange(12, dtype="float32").reshape(3, 4)
ops_ok = bool(np.allclose(ops.convert_to_numpy(y), expected @ expected.T))

a = keras.random.normal((2, 3), seed=42)
b = keras.random.normal((2, 3), seed=42)
print("same seed, same numbers:", np.allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b)))
seed_gen = keras.random.SeedGenerator(seed=42)
c = keras.random.uniform((1000,), minval=-1, maxval=1, seed=seed_gen)
d = keras.random.uniform((1000,), minval=-1, maxval=1, seed=seed_gen)
print("SeedGenerator draws differ:", not np.allclose(ops.convert_to_numpy(c), ops.convert_to_numpy(d)))
u = ops.convert_to_numpy(c)
n = ops.convert_to_numpy(keras.random.truncated_normal((2000,), stddev=1.0, seed=seed_gen))
ints = ops.convert_to_numpy(keras.random.randint((100,), 0, 5, seed=seed_gen))
dropped = ops.convert_to_numpy(keras.random.dropout(ops.ones((1000,)), rate=0.5, seed=seed_gen))
shuffled = ops.convert_to_numpy(keras.random.shuffle(ops.arange(10), seed=seed_gen))
cats = ops.convert_to_numpy(keras.random.categorical(ops.log(ops.convert_to_tensor([[0.5, 0.5]])), 10, seed=1))
print(u.min(), u.max(), np.abs(n).max(), ints.min(), ints.max(), dropped.mean(), sorted(shuffled), cats.shape)
random_ok = (-1 <= u.min() and u.max() <= 1 and np.abs(n).max() <= 2.0 and ints.min() >= 0
             and ints.max() < 5 and 0.3 < dropped.mean() < 1.7 and sorted(shuffled) == list(range(10)))

# A functional model written with ops on symbolic inputs
inputs = keras.Input(shape=(8,))
scaled = ops.tanh(inputs) * 2.0 + 1.0
h = layers.Dense(16, activation="relu")(scaled)
gate = ops.sigmoid(layers.Dense(16)(inputs))
h = h * gate
h = ops.concatenate([h, ops.square(inputs)], axis=-1)
outputs = layers.Dense(1)(h)
model = keras.Model(inputs, outputs)
model.summary()

rng = np.random.default_rng(0)
x_data = rng.normal(size=(512, 8)).astype("float32")
y_data = (np.sum(x_data[:, :3] ** 2, axis=1, keepdims=True) - 3.0).astype("float32")
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
history = model.fit(x_data, y_data, epochs=6, batch_size=32, verbose=0)
print(f"RESULT ops_ok={int(ops_ok)} random_ok={int(random_ok)} first_loss={history.history['loss'][0]:.4f} "
      f"loss={history.history['loss'][-1]:.4f}")
