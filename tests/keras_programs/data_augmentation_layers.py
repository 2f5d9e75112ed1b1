# Source: "Data augmentation", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/images/data_augmentation
# Sections "Use Keras preprocessing layers" (Resizing, Rescaling, RandomFlip, RandomRotation),
# "Option 1: Make the preprocessing layers part of your model".
# Adapted: Fashion-MNIST (28x28x1) instead of tf_flowers; 2,000 images, 2 epochs.
import numpy as np
import keras
from keras import layers

(train_images, train_labels), (test_images, test_labels) = keras.datasets.fashion_mnist.load_data()
train_images = train_images[:2000, ..., None].astype("float32")
train_labels = train_labels[:2000]
test_images = test_images[:500, ..., None].astype("float32")
test_labels = test_labels[:500]
num_classes = 10

IMG_SIZE = 24

resize_and_rescale = keras.Sequential([
    layers.Resizing(IMG_SIZE, IMG_SIZE),
    layers.Rescaling(1./255)
])
result = resize_and_rescale(train_images[:1])
result = keras.ops.convert_to_numpy(result)
print("Min and max pixel values:", result.min(), result.max())

data_augmentation = keras.Sequential([
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.1),
])
augmented_image = data_augmentation(np.expand_dims(result[0], 0))
print(tuple(augmented_image.shape))

model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    # Add the preprocessing layers you created earlier.
    resize_and_rescale,
    data_augmentation,
    layers.Conv2D(16, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Conv2D(32, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(64, activation="relu"),
    layers.Dense(num_classes)
])
model.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
history = model.fit(train_images, train_labels, validation_data=(test_images, test_labels),
                    epochs=2, batch_size=64)
loss, acc = model.evaluate(test_images, test_labels)
print("Accuracy", acc)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={acc:.4f}")
