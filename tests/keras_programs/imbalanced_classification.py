# Source: "Imbalanced classification: credit card fraud detection" (fchollet),
# https://keras.io/examples/structured_data/imbalanced_classification/
# Adapted: generated transactions (30 features, ~2% positives) instead of the Kaggle CSV;
# 3 epochs of 4,000 samples.
import numpy as np
import keras

rng = np.random.default_rng(0)
n = 5000
features = rng.normal(size=(n, 30)).astype("float32")
score = features[:, 0] * 1.5 + features[:, 1] - features[:, 2] * 0.5
targets = (score + rng.normal(scale=0.5, size=n) > 4.0).astype("uint8")[:, None]
print("features.shape:", features.shape)
print("targets.shape:", targets.shape)

num_val_samples = int(len(features) * 0.2)
train_features = features[:-num_val_samples]
train_targets = targets[:-num_val_samples]
val_features = features[-num_val_samples:]
val_targets = targets[-num_val_samples:]

print("Number of training samples:", len(train_features))
print("Number of validation samples:", len(val_features))

counts = np.bincount(train_targets[:, 0])
print(
    "Number of positive samples in training data: {} ({:.2f}% of total)".format(
        counts[1], 100 * float(counts[1]) / len(train_targets)
    )
)

weight_for_0 = 1.0 / counts[0]
weight_for_1 = 1.0 / counts[1]

mean = np.mean(train_features, axis=0)
train_features -= mean
val_features -= mean
std = np.std(train_features, axis=0)
train_features /= std
val_features /= std

model = keras.Sequential(
    [
        keras.Input(shape=train_features.shape[1:]),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.summary()

metrics = [
    keras.metrics.FalseNegatives(name="fn"),
    keras.metrics.FalsePositives(name="fp"),
    keras.metrics.TrueNegatives(name="tn"),
    keras.metrics.TruePositives(name="tp"),
    keras.metrics.Precision(name="precision"),
    keras.metrics.Recall(name="recall"),
]

model.compile(
    optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics
)

callbacks = [keras.callbacks.ModelCheckpoint("fraud_model_at_epoch_{epoch}.keras")]
class_weight = {0: weight_for_0, 1: weight_for_1}

history = model.fit(
    train_features,
    train_targets,
    batch_size=512,
    epochs=6,
    verbose=2,
    callbacks=callbacks,
    validation_data=(val_features, val_targets),
    class_weight=class_weight,
)
h = history.history
print(f"RESULT first_loss={h['loss'][0]:.4e} loss={h['loss'][-1]:.4e} val_recall={h['val_recall'][-1]:.4f} "
      f"val_tp={h['val_tp'][-1]:.0f} val_fn={h['val_fn'][-1]:.0f} val_positives={int(val_targets.sum())}")
