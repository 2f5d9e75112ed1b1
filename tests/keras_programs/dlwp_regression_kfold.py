# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 4, "Predicting house
# prices: A regression example" (listings 4.23-4.30, K-fold validation).
# Adapted: generated housing-like data (13 features) instead of Boston Housing; 3 folds,
# 10 epochs.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(0)
n = 400
features = rng.normal(size=(n, 13)) * rng.uniform(0.5, 50, size=13) + rng.uniform(0, 100, size=13)
true_w = rng.normal(size=13)
standardized = (features - features.mean(axis=0)) / features.std(axis=0)
targets = 22 + 3 * standardized @ true_w / np.sqrt(13) + rng.normal(scale=1.0, size=n)
train_data, test_data = features[:320], features[320:]
train_targets, test_targets = targets[:320], targets[320:]

mean = train_data.mean(axis=0)
train_data -= mean
std = train_data.std(axis=0)
train_data /= std
test_data -= mean
test_data /= std


def build_model():
    model = keras.Sequential([
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1)
    ])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    return model


k = 3
num_val_samples = len(train_data) // k
num_epochs = 10
all_mae_histories = []
for i in range(k):
    print(f"Processing fold #{i}")
    val_data = train_data[i * num_val_samples: (i + 1) * num_val_samples]
    val_targets = train_targets[i * num_val_samples: (i + 1) * num_val_samples]
    partial_train_data = np.concatenate(
        [train_data[:i * num_val_samples],
         train_data[(i + 1) * num_val_samples:]],
        axis=0)
    partial_train_targets = np.concatenate(
        [train_targets[:i * num_val_samples],
         train_targets[(i + 1) * num_val_samples:]],
        axis=0)
    model = build_model()
    history = model.fit(partial_train_data, partial_train_targets,
                        validation_data=(val_data, val_targets),
                        epochs=num_epochs, batch_size=16, verbose=0)
    mae_history = history.history["val_mae"]
    all_mae_histories.append(mae_history)

average_mae_history = [
    np.mean([x[i] for x in all_mae_histories]) for i in range(num_epochs)]
print(average_mae_history[:3], average_mae_history[-3:])

model = build_model()
model.fit(train_data, train_targets, epochs=10, batch_size=16, verbose=0)
test_mse_score, test_mae_score = model.evaluate(test_data, test_targets)
predictions = model.predict(test_data)
print(predictions[0])
print(f"RESULT first_val_mae={average_mae_history[0]:.4f} val_mae={average_mae_history[-1]:.4f} "
      f"test_mae={test_mae_score:.4f}")
