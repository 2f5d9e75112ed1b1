# Source: "Audio Classification with the STFTSpectrogram layer" (Mostafa M. Amin),
# https://keras.io/examples/audio/stft/
# WAV files read with scipy and resampled, a 1-D model whose first layer is a trainable
# keras.layers.STFTSpectrogram (mode="log", frame_length / frame_step in samples) followed by
# Conv1D / LayerNormalization / MaxPooling1D / GlobalMaxPooling1D / Dense, EarlyStopping with
# restore_best_weights; a second model with a 2-D spectrogram (expand_dims=True) feeding a Conv2D
# stack.
# Adapted: ESC-10 is not local: spoken words "yes" / "no" / "stop" synthesized with espeak-ng
# (10 speeds and pitches each) at 8 kHz, 0.6 s clips instead of 5 s; the 2-D model's
# MobileNet(weights="imagenet") (a download) is a small Conv2D stack; filters and Dense widths
# cut; 8 epochs with Adam(1e-3) instead of 200 with 1e-5.
import os
import subprocess
import tempfile

import numpy as np
import scipy.io.wavfile
import scipy.signal
import keras
from keras import layers

SAMPLE_RATE = 8000
TOTAL_SAMPLES = SAMPLE_RATE * 600 // 1000
BATCH_SIZE = 8
EPOCHS = 8
WORDS = ["yes", "no", "stop"]
NUM_CLASSES = len(WORDS)

BASE_DATA_DIR = tempfile.mkdtemp()
rows = []
for target, word in enumerate(WORDS):
    for i in range(10):
        filename = f"{word}-{i}.wav"
        subprocess.run(["espeak-ng", "-w", os.path.join(BASE_DATA_DIR, filename),
                        "-s", str(120 + 9 * i), "-p", str(25 + 5 * (i % 7)), word], check=True)
        rows.append((filename, target, i % 5))


def read_wav_file(path, target_sr=SAMPLE_RATE):
    sr, wav = scipy.io.wavfile.read(os.path.join(BASE_DATA_DIR, path))
    wav = wav.astype(np.float32) / 32768.0  # normalize to [-1, 1]
    num_samples = int(len(wav) / sr * target_sr)  # resample to 8 kHz
    wav = scipy.signal.resample(wav, num_samples)
    wav = np.pad(wav, (0, max(0, TOTAL_SAMPLES - len(wav))))[:TOTAL_SAMPLES]
    return wav[:, None]  # Add a channel dimension (of size 1)


def read_dataset(rows, folds):
    selected = [(f, t) for f, t, fold in rows if fold in folds]
    waves = np.array([read_wav_file(f) for f, _ in selected], dtype=np.float32)
    targets = np.array([t for _, t in selected])
    return waves, targets


train_x, train_y = read_dataset(rows, [0, 1, 2, 3])
valid_x, valid_y = read_dataset(rows, [4])
print("train:", train_x.shape, "valid:", valid_x.shape)


def build_model1d(input_shape):
    inp = keras.Input(input_shape)
    x = layers.STFTSpectrogram(
        mode="log",
        frame_length=SAMPLE_RATE * 40 // 1000,
        frame_step=SAMPLE_RATE * 15 // 1000,
        trainable=True,
    )(inp)
    x = layers.LayerNormalization()(x)
    x = layers.Conv1D(32, 5, activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(32, 3, activation="relu")(x)
    x = layers.LayerNormalization()(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inp, x, name="model1d")


model1d = build_model1d(train_x.shape[1:])
model1d.summary()
stft_kernels = len(model1d.layers[1].trainable_weights)

model1d.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
history_model1d = model1d.fit(
    train_x,
    train_y,
    batch_size=BATCH_SIZE,
    validation_data=(valid_x, valid_y),
    epochs=EPOCHS,
    callbacks=[
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=EPOCHS, restore_best_weights=True
        )
    ],
)


def build_model2d(input_shape):
    inp = keras.Input(input_shape)
    x = layers.STFTSpectrogram(
        mode="log",
        frame_length=SAMPLE_RATE * 20 // 1000,
        frame_step=SAMPLE_RATE * 10 // 1000,
        expand_dims=True,
    )(inp)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inp, x, name="model2d")


model2d = build_model2d(train_x.shape[1:])
model2d.summary()
spectrogram_shape = model2d.layers[1].output.shape
model2d.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
history_model2d = model2d.fit(
    train_x,
    train_y,
    batch_size=BATCH_SIZE,
    validation_data=(valid_x, valid_y),
    epochs=4,
)
_, valid_accuracy = model1d.evaluate(valid_x, valid_y, verbose=0)
print(f"RESULT first_loss={history_model1d.history['loss'][0]:.4f} "
      f"loss={history_model1d.history['loss'][-1]:.4f} valid_accuracy={valid_accuracy:.4f} "
      f"params={model1d.count_params()} stft_kernels={stft_kernels} "
      f"model2d_first_loss={history_model2d.history['loss'][0]:.4f} "
      f"model2d_loss={history_model2d.history['loss'][-1]:.4f} "
      f"spectrogram_frames={spectrogram_shape[1]} spectrogram_bins={spectrogram_shape[2]} "
      f"model2d_params={model2d.count_params()}")
