# Source: "Writing your own callbacks" guide (Rick Chao, Francois Chollet),
# https://keras.io/guides/writing_your_own_callbacks/
# Sections: CustomCallback (every hook), LossAndErrorPrintingCallback, EarlyStoppingAtMinLoss
# (get_weights/set_weights, stop_training), CustomLearningRateScheduler.
# Adapted: Fashion-MNIST pixels, 1,000 images, a few epochs.
import numpy as np
import keras


# Define the Keras model to add callbacks to
def get_model():
    model = keras.Sequential()
    model.add(keras.layers.Dense(1))
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


# Load example data
(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
x_test = x_test.reshape(-1, 784).astype("float32") / 255.0

# Limit the data to 1000 samples
x_train = x_train[:1000]
y_train = y_train[:1000]
x_test = x_test[:1000]
y_test = y_test[:1000]

calls = []


class CustomCallback(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        keys = list(logs.keys())
        calls.append("on_train_begin")
        print("Starting training; got log keys: {}".format(keys))

    def on_train_end(self, logs=None):
        calls.append("on_train_end")

    def on_epoch_begin(self, epoch, logs=None):
        calls.append("on_epoch_begin")

    def on_epoch_end(self, epoch, logs=None):
        calls.append("on_epoch_end")

    def on_test_begin(self, logs=None):
        calls.append("on_test_begin")

    def on_test_end(self, logs=None):
        calls.append("on_test_end")

    def on_predict_begin(self, logs=None):
        calls.append("on_predict_begin")

    def on_predict_end(self, logs=None):
        calls.append("on_predict_end")

    def on_train_batch_begin(self, batch, logs=None):
        calls.append("on_train_batch_begin")

    def on_train_batch_end(self, batch, logs=None):
        calls.append("on_train_batch_end")

    def on_test_batch_begin(self, batch, logs=None):
        calls.append("on_test_batch_begin")

    def on_test_batch_end(self, batch, logs=None):
        calls.append("on_test_batch_end")

    def on_predict_batch_begin(self, batch, logs=None):
        calls.append("on_predict_batch_begin")

    def on_predict_batch_end(self, batch, logs=None):
        calls.append("on_predict_batch_end")


model = get_model()
model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5,
          callbacks=[CustomCallback()])
res = model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[CustomCallback()])
res = model.predict(x_test, batch_size=128, callbacks=[CustomCallback()])
hooks_seen = len(set(calls))
print("hooks seen:", sorted(set(calls)))


class LossAndErrorPrintingCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print("Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"]))

    def on_test_batch_end(self, batch, logs=None):
        print("Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        print("The average loss for epoch {} is {:7.2f} and mean absolute error is {:7.2f}."
              .format(epoch, logs["loss"], logs["mean_absolute_error"]))


model = get_model()
model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0,
          callbacks=[LossAndErrorPrintingCallback()])
res = model.evaluate(x_test, y_test, batch_size=128, verbose=0,
                     callbacks=[LossAndErrorPrintingCallback()])


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    """Stop training when the loss is at its min, i.e. the loss stops decreasing.

    Arguments:
        patience: Number of epochs to wait after min has been hit. After this
        number of no improvement, training stops.
    """

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        # best_weights to store the weights at which the minimum loss occurs.
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # The number of epoch it has waited when loss is no longer minimum.
        self.wait = 0
        # The epoch the training stops at.
        self.stopped_epoch = 0
        # Initialize the best as infinity.
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            # Record the best weights if current results is better (less).
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


model = get_model()
history = model.fit(x_train, y_train, batch_size=64, epochs=8, verbose=0,
                    callbacks=[LossAndErrorPrintingCallback(), EarlyStoppingAtMinLoss()])
epochs_run = len(history.history["loss"])


class CustomLearningRateScheduler(keras.callbacks.Callback):
    """Learning rate scheduler which sets the learning rate according to schedule.

    Arguments:
        schedule: a function that takes an epoch index
            (integer, indexed from 0) and current learning rate
            as inputs and returns a new learning rate as output (float).
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        # Get the current learning rate from model's optimizer.
        lr = self.model.optimizer.learning_rate
        # Call schedule function to get the scheduled learning rate.
        scheduled_lr = self.schedule(epoch, lr)
        # Set the value back to the optimizer before this epoch starts
        self.model.optimizer.learning_rate = scheduled_lr
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [
    # (epoch to start, learning rate) tuples
    (1, 0.05),
    (2, 0.01),
    (3, 0.005),
]


def lr_schedule(epoch, lr):
    """Helper function to retrieve the scheduled learning rate based on epoch."""
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr


model = get_model()
lr_history = model.fit(x_train, y_train, batch_size=64, epochs=4, verbose=0,
                       callbacks=[LossAndErrorPrintingCallback(),
                                  CustomLearningRateScheduler(lr_schedule)])
final_lr = float(np.array(model.optimizer.learning_rate))
print(f"RESULT hooks_seen={hooks_seen} early_stop_epochs={epochs_run} final_lr={final_lr:.4f} "
      f"first_loss={lr_history.history['loss'][0]:.4f} loss={lr_history.history['loss'][-1]:.4f}")
