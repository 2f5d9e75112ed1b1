# Source: "Overfit and underfit", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/keras/overfit_and_underfit
# Sections: InverseTimeDecay schedule, get_callbacks (EarlyStopping on
# val_binary_crossentropy), tiny/small models, L2 weight regularization, dropout, combined
# L2 + dropout.
# Adapted: generated 28-feature binary data instead of the Higgs CSV; 1,000 training examples,
# 8 epochs per model; labels of shape (N, 1) (the torch backend does not broadcast (N,)).
import numpy as np
import keras
from keras import layers
from keras import regularizers

FEATURES = 28
rng = np.random.default_rng(0)
x = rng.normal(size=(1500, FEATURES)).astype("float32")
w = rng.normal(size=FEATURES)
logits = x @ w / np.sqrt(FEATURES) + 0.5 * np.sin(3 * x[:, 0])
y = (logits + rng.logistic(scale=0.3, size=len(x)) > 0).astype("float32")[:, None]

N_VALIDATION = 500
N_TRAIN = 1000
BATCH_SIZE = 50
STEPS_PER_EPOCH = N_TRAIN // BATCH_SIZE
train_x, train_y = x[:N_TRAIN], y[:N_TRAIN]
validate_x, validate_y = x[N_TRAIN:], y[N_TRAIN:]

lr_schedule = keras.optimizers.schedules.InverseTimeDecay(
    0.001,
    decay_steps=STEPS_PER_EPOCH * 1000,
    decay_rate=1,
    staircase=False)


def get_optimizer():
    return keras.optimizers.Adam(lr_schedule)


def get_callbacks(name):
    return [
        keras.callbacks.EarlyStopping(monitor="val_binary_crossentropy", patience=200),
    ]


def compile_and_fit(model, name, optimizer=None, max_epochs=8):
    if optimizer is None:
        optimizer = get_optimizer()
    model.compile(optimizer=optimizer,
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[
                      keras.metrics.BinaryCrossentropy(from_logits=True, name="binary_crossentropy"),
                      "accuracy"])

    model.summary()

    history = model.fit(
        train_x, train_y,
        batch_size=BATCH_SIZE,
        epochs=max_epochs,
        validation_data=(validate_x, validate_y),
        callbacks=get_callbacks(name),
        verbose=0)
    return history


size_histories = {}
tiny_model = keras.Sequential([
    layers.Dense(16, activation="elu", input_shape=(FEATURES,)),
    layers.Dense(1)
])
size_histories["Tiny"] = compile_and_fit(tiny_model, "sizes/Tiny")

small_model = keras.Sequential([
    # `input_shape` is only required here so that `.summary` works.
    layers.Dense(16, activation="elu", input_shape=(FEATURES,)),
    layers.Dense(16, activation="elu"),
    layers.Dense(1)
])
size_histories["Small"] = compile_and_fit(small_model, "sizes/Small")

regularizer_histories = {}
l2_model = keras.Sequential([
    layers.Dense(64, activation="elu", kernel_regularizer=regularizers.l2(0.001),
                 input_shape=(FEATURES,)),
    layers.Dense(64, activation="elu", kernel_regularizer=regularizers.l2(0.001)),
    layers.Dense(1)
])
regularizer_histories["l2"] = compile_and_fit(l2_model, "regularizers/l2")
result = l2_model(train_x[:10])
regularization_loss = sum(l2_model.losses)
print("regularization loss:", float(regularization_loss))

dropout_model = keras.Sequential([
    layers.Dense(64, activation="elu", input_shape=(FEATURES,)),
    layers.Dropout(0.5),
    layers.Dense(64, activation="elu"),
    layers.Dropout(0.5),
    layers.Dense(1)
])
regularizer_histories["dropout"] = compile_and_fit(dropout_model, "regularizers/dropout")

combined_model = keras.Sequential([
    layers.Dense(64, kernel_regularizer=regularizers.l2(0.0001), activation="elu",
                 input_shape=(FEATURES,)),
    layers.Dropout(0.5),
    layers.Dense(64, kernel_regularizer=regularizers.l2(0.0001), activation="elu"),
    layers.Dropout(0.5),
    layers.Dense(1)
])
regularizer_histories["combined"] = compile_and_fit(combined_model, "regularizers/combined")
h = size_histories["Small"].history
print(f"RESULT first_loss={h['loss'][0]:.4f} loss={h['loss'][-1]:.4f} val_accuracy={h['val_accuracy'][-1]:.4f} "
      f"l2_reg_loss={float(regularization_loss):.4f} "
      f"combined_val_accuracy={regularizer_histories['combined'].history['val_accuracy'][-1]:.4f}")
