# Source: "Next-Frame Video Prediction with Convolutional LSTMs" (Amogh Joshi),
# https://keras.io/examples/vision/conv_lstm/
# Three ConvLSTM2D layers with BatchNormalization and a Conv3D head predict each next frame;
# EarlyStopping / ReduceLROnPlateau on val_loss; frames predicted one at a time from the model's
# own output, as in the example.
# Adapted: Moving MNIST is not local: 60 generated sequences of 8 frames of 16x16 with a moving
# 3x3 square; 8 filters instead of 64; 3 epochs of batch 5; 4 frames predicted from 4.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(0)
num_sequences, num_frames, size = 60, 8, 16
dataset = np.zeros((num_sequences, num_frames, size, size), dtype="float32")
for i in range(num_sequences):
    row, col = rng.integers(0, size - 3, size=2)
    d_row, d_col = rng.choice([-1, 1], size=2)
    for t in range(num_frames):
        dataset[i, t, row : row + 3, col : col + 3] = 255.0
        if not 0 <= row + d_row <= size - 3:
            d_row = -d_row
        if not 0 <= col + d_col <= size - 3:
            d_col = -d_col
        row, col = row + d_row, col + d_col
# Add a channel dimension since the images are grayscale.
dataset = np.expand_dims(dataset, axis=-1)

# Split into train and validation sets using indexing to optimize memory.
indexes = np.arange(dataset.shape[0])
np.random.shuffle(indexes)
train_index = indexes[: int(0.9 * dataset.shape[0])]
val_index = indexes[int(0.9 * dataset.shape[0]) :]
train_dataset = dataset[train_index]
val_dataset = dataset[val_index]

# Normalize the data to the 0-1 range.
train_dataset = train_dataset / 255
val_dataset = val_dataset / 255


# We'll define a helper function to shift the frames, where
# `x` is frames 0 to n - 1, and `y` is frames 1 to n.
def create_shifted_frames(data):
    x = data[:, 0 : data.shape[1] - 1, :, :]
    y = data[:, 1 : data.shape[1], :, :]
    return x, y


# Apply the processing function to the datasets.
x_train, y_train = create_shifted_frames(train_dataset)
x_val, y_val = create_shifted_frames(val_dataset)

# Inspect the dataset.
print("Training Dataset Shapes: " + str(x_train.shape) + ", " + str(y_train.shape))
print("Validation Dataset Shapes: " + str(x_val.shape) + ", " + str(y_val.shape))

# Construct the input layer with no definite frame size.
inp = layers.Input(shape=(None, *x_train.shape[2:]))

# We will construct 3 `ConvLSTM2D` layers with batch normalization,
# followed by a `Conv3D` layer for the spatiotemporal outputs.
x = layers.ConvLSTM2D(
    filters=8,
    kernel_size=(5, 5),
    padding="same",
    return_sequences=True,
    activation="relu",
)(inp)
x = layers.BatchNormalization()(x)
x = layers.ConvLSTM2D(
    filters=8,
    kernel_size=(3, 3),
    padding="same",
    return_sequences=True,
    activation="relu",
)(x)
x = layers.BatchNormalization()(x)
x = layers.ConvLSTM2D(
    filters=8,
    kernel_size=(1, 1),
    padding="same",
    return_sequences=True,
    activation="relu",
)(x)
x = layers.Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same")(x)

# Next, we will build the complete model and compile it.
model = keras.models.Model(inp, x)
model.compile(
    loss=keras.losses.binary_crossentropy,
    optimizer=keras.optimizers.Adam(),
)
model.summary()

# Define some callbacks to improve training.
early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10)
reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=5)

# Define modifiable training hyperparameters.
epochs = 3
batch_size = 5

# Fit the model to the training data.
history = model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    validation_data=(x_val, y_val),
    callbacks=[early_stopping, reduce_lr],
)

# Select a random example from the validation dataset.
example = val_dataset[np.random.choice(range(len(val_dataset)), size=1)[0]]

# Pick the first/last four frames from the example.
frames = example[:4, ...]
original_frames = example[4:, ...]

# Predict a new set of 4 frames.
for _ in range(4):
    # Extract the model's prediction and post-process it.
    new_prediction = model.predict(np.expand_dims(frames, axis=0), verbose=0)
    new_prediction = np.squeeze(new_prediction, axis=0)
    predicted_frame = np.expand_dims(new_prediction[-1, ...], axis=0)

    # Extend the set of observed frames.
    frames = np.concatenate((frames, predicted_frame), axis=0)

print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"val_loss={history.history['val_loss'][-1]:.4f} frames={frames.shape[0]} "
      f"frame_min={frames.min():.4f} frame_max={frames.max():.4f} params={model.count_params()}")
