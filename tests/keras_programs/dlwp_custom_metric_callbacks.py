# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 7, "Working with Keras: A
# deep dive": a custom metric (RootMeanSquaredError subclassing keras.metrics.Metric), built-in
# callbacks (EarlyStopping, ModelCheckpoint), a custom callback recording per-batch losses
# (LossHistory, on_batch_end), the get_mnist_model() functional model, and evaluate/predict.
# Adapted: Keras 3 ops instead of tf.*, Fashion-MNIST, 2,000 images, 2-3 epochs.
import numpy as np
import keras
from keras import layers
from keras import ops


def get_mnist_model():
    inputs = keras.Input(shape=(28 * 28,))
    features = layers.Dense(128, activation="relu")(inputs)
    features = layers.Dropout(0.5)(features)
    outputs = layers.Dense(10, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    return model


(images, labels), (test_images, test_labels) = keras.datasets.fashion_mnist.load_data()
images = images[:2000].reshape((2000, 28 * 28)).astype("float32") / 255
test_images = test_images[:1000].reshape((1000, 28 * 28)).astype("float32") / 255
labels, test_labels = labels[:2000], test_labels[:1000]
train_images, val_images = images[500:], images[:500]
train_labels, val_labels = labels[500:], labels[:500]


class RootMeanSquaredError(keras.metrics.Metric):

    def __init__(self, name="rmse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mse_sum = self.add_weight(name="mse_sum", initializer="zeros")
        self.total_samples = self.add_weight(name="total_samples", initializer="zeros",
                                             dtype="int32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.one_hot(y_true, num_classes=ops.shape(y_pred)[1])
        mse = ops.sum(ops.square(y_true - y_pred))
        self.mse_sum.assign_add(mse)
        num_samples = ops.shape(y_pred)[0]
        self.total_samples.assign_add(num_samples)

    def result(self):
        return ops.sqrt(self.mse_sum / ops.cast(self.total_samples, "float32"))

    def reset_state(self):
        self.mse_sum.assign(0.)
        self.total_samples.assign(0)


model = get_mnist_model()
model.compile(optimizer="rmsprop",
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy", RootMeanSquaredError()])
history = model.fit(train_images, train_labels, epochs=3,
                    validation_data=(val_images, val_labels))
test_metrics = model.evaluate(test_images, test_labels)
print(test_metrics)

callbacks_list = [
    keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        patience=2,
    ),
    keras.callbacks.ModelCheckpoint(
        filepath="checkpoint_path.keras",
        monitor="val_loss",
        save_best_only=True,
    )
]
model = get_mnist_model()
model.compile(optimizer="rmsprop",
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(train_images, train_labels,
          epochs=2,
          callbacks=callbacks_list,
          validation_data=(val_images, val_labels))
model = keras.models.load_model("checkpoint_path.keras")


class LossHistory(keras.callbacks.Callback):
    def on_train_begin(self, logs):
        self.per_batch_losses = []

    def on_batch_end(self, batch, logs):
        self.per_batch_losses.append(logs.get("loss"))

    def on_epoch_end(self, epoch, logs):
        print(f"epoch {epoch}: {len(self.per_batch_losses)} batch losses, "
              f"last {self.per_batch_losses[-1]:.4f}")
        self.per_batch_losses = []


loss_history = LossHistory()
model = get_mnist_model()
model.compile(optimizer="rmsprop",
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(train_images, train_labels,
          epochs=2,
          callbacks=[loss_history],
          validation_data=(val_images, val_labels))
predictions = model.predict(test_images)
print(predictions.shape)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"first_rmse={history.history['rmse'][0]:.4f} rmse={history.history['rmse'][-1]:.4f} "
      f"test_accuracy={test_metrics[1]:.4f} test_rmse={test_metrics[2]:.4f}")
