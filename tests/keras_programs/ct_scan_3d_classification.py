# Source: "3D image classification from CT scans" (Hasib Zunair),
# https://keras.io/examples/vision/3D_image_classification/
# The example's 3-D CNN (Conv3D / MaxPool3D / BatchNormalization blocks, GlobalAveragePooling3D,
# Dense + Dropout, sigmoid output), the ExponentialDecay learning-rate schedule, ModelCheckpoint
# and EarlyStopping on val_acc, then prediction on one validation volume.
# Adapted: the MosMedData CT scans are not local: 80 generated 16x16x8 volumes (noise, with or
# without a bright blob: "abnormal" / "normal"); filters 8/8/16/32 instead of 64/64/128/256,
# Dense 32 instead of 512, 4 epochs; the scipy rotation augmentation and tf.data pipeline left
# out (NumPy arrays passed to fit).
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(0)


def make_volume(abnormal, width=16, height=16, depth=8):
    volume = rng.normal(0.3, 0.1, size=(width, height, depth))
    if abnormal:
        cx, cy, cz = rng.integers(4, 12), rng.integers(4, 12), rng.integers(2, 6)
        xx, yy, zz = np.meshgrid(np.arange(width), np.arange(height), np.arange(depth), indexing="ij")
        volume[(xx - cx) ** 2 + (yy - cy) ** 2 + 4 * (zz - cz) ** 2 <= 9] += 0.6
    return np.clip(volume, 0, 1).astype("float32")


abnormal_scans = np.array([make_volume(True) for _ in range(40)])
normal_scans = np.array([make_volume(False) for _ in range(40)])
abnormal_labels = np.array([1 for _ in range(len(abnormal_scans))])
normal_labels = np.array([0 for _ in range(len(normal_scans))])

# Split data in the ratio 70-30 for training and validation.
x_train = np.concatenate((abnormal_scans[:28], normal_scans[:28]), axis=0)
y_train = np.concatenate((abnormal_labels[:28], normal_labels[:28]), axis=0)
x_val = np.concatenate((abnormal_scans[28:], normal_scans[28:]), axis=0)
y_val = np.concatenate((abnormal_labels[28:], normal_labels[28:]), axis=0)
print(
    "Number of samples in train and validation are %d and %d."
    % (x_train.shape[0], x_val.shape[0])
)
x_train = np.expand_dims(x_train, axis=4)
x_val = np.expand_dims(x_val, axis=4)


def get_model(width=128, height=128, depth=64):
    """Build a 3D convolutional neural network model."""

    inputs = keras.Input((width, height, depth, 1))

    x = layers.Conv3D(filters=8, kernel_size=3, activation="relu", padding="same")(inputs)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)

    x = layers.Conv3D(filters=8, kernel_size=3, activation="relu", padding="same")(x)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)

    x = layers.Conv3D(filters=16, kernel_size=3, activation="relu", padding="same")(x)
    x = layers.MaxPool3D(pool_size=(2, 2, 1))(x)
    x = layers.BatchNormalization()(x)

    x = layers.Conv3D(filters=32, kernel_size=3, activation="relu", padding="same")(x)
    x = layers.BatchNormalization()(x)

    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dense(units=32, activation="relu")(x)
    x = layers.Dropout(0.3)(x)

    outputs = layers.Dense(units=1, activation="sigmoid")(x)

    # Define the model.
    model = keras.Model(inputs, outputs, name="3dcnn")
    return model


# Build model.
model = get_model(width=16, height=16, depth=8)
model.summary()

# Compile model.
initial_learning_rate = 0.01
lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True
)
model.compile(
    loss="binary_crossentropy",
    optimizer=keras.optimizers.Adam(learning_rate=lr_schedule),
    metrics=["acc"],
    run_eagerly=True,
)

# Define callbacks.
checkpoint_cb = keras.callbacks.ModelCheckpoint(
    "3d_image_classification.keras", save_best_only=True
)
early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_acc", patience=15)

# Train the model, doing validation at the end of each epoch
epochs = 4
history = model.fit(
    x_train,
    y_train,
    validation_data=(x_val, y_val),
    epochs=epochs,
    batch_size=8,
    shuffle=True,
    verbose=2,
    callbacks=[checkpoint_cb, early_stopping_cb],
)

# Load best weights.
model.load_weights("3d_image_classification.keras")
prediction = model.predict(np.expand_dims(x_val[0], axis=0))[0]
scores = [1 - prediction[0], prediction[0]]

class_names = ["normal", "abnormal"]
for score, name in zip(scores, class_names):
    print(
        "This model is %.2f percent confident that CT scan is %s"
        % ((100 * score), name)
    )
val_accuracy = max(history.history["val_acc"])
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"best_val_acc={val_accuracy:.4f} params={model.count_params()} "
      f"score_sum={sum(scores):.4f}")
